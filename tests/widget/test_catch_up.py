"""After a channel-layer outage the widget resumes from the cursor the server's catch-up ends with."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from playwright.sync_api import BrowserContext

from tests.reliability.redis_support import KillableRedis
from tests.servers import HeraldServer
from tests.widget.conftest import HostPages, WidgetOrg, eventually, watch

pytestmark = pytest.mark.browser


def _outage_frame(frame: dict[str, Any]) -> bool:
    """A live notification sent while its socket waited for its catch-up: it names the outage's cursor."""
    return frame.get("type") == "notification" and frame["cursor"] < frame["notification"]["seq"]


def test_widget_resumes_from_the_cursor_its_catch_up_ended_with(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    # Live frames offered between the channel layer's return and the server noticing it (its probe) carry the
    # cursor of the outage's start, so a client that drops mid-catch-up misses nothing. The catch-up then ends
    # with `unread_count` and the cursor to resume from; a widget that kept only its frames' cursors would
    # resume below the items it was sent live and be sent them again.
    sid = f"u_{uuid.uuid4().hex[:8]}"
    redis = KillableRedis().start()
    try:
        with HeraldServer(env={"REDIS_URL": redis.url}) as edge:
            org = widget_org.on(edge)
            page = context.new_page()
            watched = watch(page)
            received: list[dict[str, Any]] = []
            auths: list[dict[str, Any]] = []

            def on_socket(ws: Any) -> None:
                ws.on("framereceived", lambda payload: received.append(json.loads(payload)))

                def on_sent(payload: str) -> None:
                    frame = json.loads(payload)
                    if frame.get("type") == "auth":
                        auths.append(frame)

                ws.on("framesent", on_sent)

            page.on("websocket", on_socket)
            page.goto(host_pages.add(org.page_html(sid)))
            watched.wait_state("live")
            org.send(sid, "Before")
            eventually(lambda: len(watched.items()) == 1)

            caught_up: dict[str, Any] | None = None
            for _attempt in range(5):  # the window is timing's: tried until one live frame fell into it
                start = len(received)
                redis.kill()
                org.send(sid, "During the outage")  # accepted; its publish is lost with Redis
                time.sleep(2)  # the probe notices (PROBE_SECONDS), every socket remembers where it stood
                redis.start()
                # Sends while the layer comes back: some arrive live before the probe does (outage frames).
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    if any(_outage_frame(f) or f.get("type") == "unread_count" for f in received[start:]):
                        break  # an outage frame, or the catch-up came first (then try again)
                    seq = org.send(sid, "As the layer returns")["seq"]
                    # Wait for its frame (bounded) before sending the next: the last item sent is then the one
                    # that was offered live with the outage's cursor.
                    for _ in range(50):
                        if any(f.get("notification", {}).get("seq") == seq for f in received[start:]):
                            break
                        page.wait_for_timeout(20)
                # (Waited in Playwright's own calls: it hands over frame events only then.)
                done: list[dict[str, Any]] = []
                for _ in range(300):
                    done = [f for f in received[start:] if f.get("type") == "unread_count" and "cursor" in f]
                    if done:
                        break
                    page.wait_for_timeout(100)
                assert done, "no catch-up after the channel layer came back"
                page.wait_for_timeout(500)
                frames = received[start:]
                last = max(f["cursor"] for f in frames if isinstance(f.get("cursor"), int))
                highest_sent = max(f["cursor"] for f in frames if f.get("type") == "notification")
                if done[-1]["cursor"] == last and last > highest_sent:
                    caught_up = done[-1]  # the catch-up's cursor is above every frame's: the case to prove
                    break
            assert caught_up is not None, "no live frame fell between the layer's return and the catch-up"

            # Drop the socket as a heartbeat timeout does: the widget reconnects with its resume cursor.
            before = len(auths)
            page.evaluate("document.querySelector('herald-inbox')._ws.close(4000)")
            # (The state is read first: Playwright hands over frame events only during its own calls.)
            eventually(lambda: watched.state() == "live" and len(auths) > before, timeout=30)
            assert auths[-1]["cursor"] == caught_up["cursor"]
            # Every item exactly once on screen.
            titles = [i["title"] for i in watched.items()]
            assert len(titles) == len({i["id"] for i in watched.items()})
            assert titles[-1] == "Before" and titles.count("During the outage") >= 1
            assert watched.errors == []
    finally:
        redis.stop()
