"""The dev-only demo page: the widget for the demo organisation and a button that sends it a notification."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext

from tests.conftest import Org, make_org
from tests.servers import HeraldServer, free_port
from tests.widget.conftest import eventually, off_loop, watch


def test_demo_is_not_served_outside_development(herald_server: HeraldServer) -> None:
    for path in ("/demo/", "/demo/demo.js", "/demo/demo.css"):
        assert httpx.get(herald_server.url + path).status_code == 404, path
    refused = httpx.post(herald_server.url + "/demo/send", json={"title": "x"})
    assert refused.status_code in (403, 404)


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[HeraldServer, Org]]:
    """Herald in development mode with demo keys written where `herald dev` writes them."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    org = off_loop(make_org, "Demo", origins=[origin])
    (tmp_path / "demo.json").write_text(
        json.dumps(
            {
                "slug": org.organization.slug,
                "secret_key": org.secret_key,
                "publishable_key": org.publishable_key,
                "subscriber_id": "demo-user",
            }
        )
    )
    with HeraldServer(port=port, env={"HERALD_ENV": "development", "HERALD_DATA_DIR": str(tmp_path)}) as server:
        yield server, org


@pytest.mark.browser
def test_demo_page_sends_a_test_notification_that_appears_live(
    context: BrowserContext, dev_server: tuple[HeraldServer, Org]
) -> None:
    server, org = dev_server
    page = context.new_page()
    watched = watch(page)
    response = page.goto(server.url + "/demo/")
    assert response is not None and response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "unsafe" not in csp
    html = page.content()
    assert org.secret_key not in html and org.secret_key[:16] not in html
    assert org.publishable_key in html
    watched.wait_state("live")
    page.fill("#title", "Demo says hi")
    page.click("#send")
    eventually(lambda: [i["title"] for i in watched.items()] == ["Demo says hi"])
    # The socket can show the item before the page has read /demo/send's answer: wait for both.
    eventually(lambda: (page.locator("#status").text_content() or "").startswith("Sent (sequence "))
    assert watched.badge() == "1"
    page.click("#send")
    eventually(lambda: len(watched.items()) == 2)
    assert watched.violations() == []
    assert watched.errors == []


def test_demo_send_needs_the_pages_csrf_token(dev_server: tuple[HeraldServer, Org]) -> None:
    server, _ = dev_server
    # Another site cannot make the demo send: no CSRF token, no send.
    forged = httpx.post(
        server.url + "/demo/send", json={"title": "x"}, headers={"Origin": "http://evil.test"}, timeout=10
    )
    assert forged.status_code == 403
    assert httpx.get(server.url + "/demo/demo.js").headers["content-type"] == "text/javascript; charset=utf-8"
    assert httpx.get(server.url + "/demo/nope.js").status_code == 404
