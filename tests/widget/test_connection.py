"""Token mode refreshes on the open socket; a hidden tab stops reconnecting and catches up when shown."""

from __future__ import annotations

import html
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import BrowserContext

from notifications.proofs import subscriber_token
from tests.servers import HeraldServer
from tests.widget.conftest import HostPages, WidgetOrg, eventually, watch

pytestmark = pytest.mark.browser

TOKEN_SECONDS = 5


def test_token_provider_is_refreshed_before_expiry_without_dropping_the_socket(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    sid = f"u_{uuid.uuid4().hex[:8]}"
    issued: list[datetime] = []

    def token(query: str) -> str:
        expires = datetime.now(tz=UTC) + timedelta(seconds=TOKEN_SECONDS)
        issued.append(expires)
        return subscriber_token(widget_org.signing_secret, sid, expires)

    widget_org.send(sid, "Sent before the page opened")
    endpoint = html.escape(host_pages.route(token))
    page_html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Token app</title>
<script type="module" src="{widget_org.server.url}/widget/v1/herald.js"></script></head>
<body><herald-inbox publishable-key="{html.escape(widget_org.org.publishable_key)}"></herald-inbox>
<script type="module">
  // Set before or after the element upgrades, the property must take.
  document.querySelector('herald-inbox').tokenProvider = async () => (await fetch("{endpoint}")).text();
</script></body></html>"""
    page = context.new_page()
    watched = watch(page)
    sockets: list[str] = []
    closed: list[str] = []

    def on_socket(ws: object) -> None:
        sockets.append(ws.url)  # type: ignore[attr-defined]
        ws.on("close", lambda _: closed.append(ws.url))  # type: ignore[attr-defined]

    page.on("websocket", on_socket)
    page.goto(host_pages.add(page_html))
    watched.wait_state("live")
    # The HTTP API took the token too: the item sent earlier was loaded over HTTP with it.
    eventually(lambda: [i["title"] for i in watched.items()] == ["Sent before the page opened"])
    # Outlive two token lifetimes: the server would close at `exp` without a fresh `auth`.
    time.sleep(2 * TOKEN_SECONDS + 1)
    assert len(issued) >= 3
    assert len(sockets) == 1 and closed == [], (sockets, closed)
    assert watched.state() == "live"
    widget_org.send(sid, "Sent after two refreshes")
    eventually(lambda: watched.items()[0]["title"] == "Sent after two refreshes")
    assert len(sockets) == 1
    assert watched.errors == []


HIDE = """(hidden) => {
  Object.defineProperty(document, 'hidden', {value: hidden, configurable: true});
  Object.defineProperty(document, 'visibilityState', {value: hidden ? 'hidden' : 'visible', configurable: true});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def test_hidden_tab_pauses_reconnecting_and_catches_up_when_visible(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    sid = f"u_{uuid.uuid4().hex[:8]}"
    with HeraldServer() as edge:
        page = context.new_page()
        watched = watch(page)
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(host_pages.add(widget_org.on(edge).page_html(sid)))
        watched.wait_state("live")
        page.evaluate(HIDE, True)
        edge.stop()
        watched.wait_state("offline")
        for n in range(5):
            widget_org.send(sid, f"While hidden {n}")
        edge.start()
        time.sleep(3)
        # Hidden: not one reconnect attempt, though the server is back.
        assert len(sockets) == 1
        assert watched.state() == "offline"
        page.evaluate(HIDE, False)
        watched.wait_state("live", timeout=5_000)
        eventually(lambda: [i["title"] for i in watched.items()] == [f"While hidden {n}" for n in reversed(range(5))])
        assert len(sockets) == 2
        assert watched.badge() == "5"


def test_a_reset_after_too_many_missed_reloads_the_inbox_over_http(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    sid = f"u_{uuid.uuid4().hex[:8]}"
    # This process replays at most 5 missed items; more is a `reset`: reload over HTTP, then stream.
    with HeraldServer(env={"HERALD_WS_REPLAY_LIMIT": "5"}) as edge:
        page = context.new_page()
        watched = watch(page)
        frames: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
        page.goto(host_pages.add(widget_org.on(edge).page_html(sid)))
        watched.wait_state("live")
        widget_org.send(sid, "Seen")
        eventually(lambda: len(watched.items()) == 1)
        edge.stop()
        watched.wait_state("offline")
        for n in range(8):
            widget_org.send(sid, f"Missed {n}")
        edge.start()
        watched.wait_state("live", timeout=30_000)
        expected = [f"Missed {n}" for n in reversed(range(8))] + ["Seen"]
        eventually(lambda: [i["title"] for i in watched.items()] == expected)
        assert any('"type": "reset"' in frame or '"type":"reset"' in frame for frame in frames)
        assert watched.badge() == "9"
        widget_org.send(sid, "After the reset")
        eventually(lambda: watched.items()[0]["title"] == "After the reset")
        assert len(watched.items()) == 10
