"""Serving the widget: headers, size, integrity, packaging, and loading under a strict CSP."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext

from notifications.widget import (
    CACHE_CONTROL,
    integrity_for,
    widget_asset,
    widget_integrity,
    widget_snippet,
    widget_source,
)
from tests.servers import HeraldServer
from tests.widget.conftest import HostPages, inbox_page, strict_csp, watch

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "notifications" / "static" / "herald" / "widget" / "v1" / "herald.js"
MAX_GZIPPED = 12 * 1024


def fetch(server: HeraldServer, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.url}/widget/v1/herald.js", headers=headers, timeout=10)


def test_widget_is_served_as_immutable_javascript_any_site_may_load(herald_server: HeraldServer) -> None:
    response = fetch(herald_server, **{"Accept-Encoding": "identity", "Origin": "https://customer.example"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable" == CACHE_CONTROL
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-encoding" not in response.headers
    assert response.content == SOURCE.read_bytes()


def test_widget_is_gzipped_when_accepted_and_revalidates_by_etag(herald_server: HeraldServer) -> None:
    raw = httpx.get(f"{herald_server.url}/widget/v1/herald.js", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["vary"] == "Accept-Encoding"
    assert raw.content == SOURCE.read_bytes()  # httpx decoded it
    again = fetch(herald_server, **{"If-None-Match": raw.headers["etag"], "Accept-Encoding": "gzip"})
    assert again.status_code == 304
    assert again.headers["cache-control"] == CACHE_CONTROL
    assert fetch(herald_server, **{"If-None-Match": '"stale"', "Accept-Encoding": "gzip"}).status_code == 200
    plain = fetch(herald_server, **{"Accept-Encoding": "identity"})
    assert plain.headers["etag"] != raw.headers["etag"]  # one validator per encoding
    revalidated = fetch(herald_server, **{"If-None-Match": plain.headers["etag"], "Accept-Encoding": "identity"})
    assert revalidated.status_code == 304


def test_widget_is_at_most_12_kib_gzipped(herald_server: HeraldServer) -> None:
    served = fetch(herald_server, **{"Accept-Encoding": "identity"}).content
    size = len(gzip.compress(served, compresslevel=9))
    print(f"widget: {len(served)} bytes, {size} bytes gzipped ({size / 1024:.2f} KiB)")
    assert size <= MAX_GZIPPED
    with httpx.stream("GET", f"{herald_server.url}/widget/v1/herald.js", headers={"Accept-Encoding": "gzip"}) as r:
        on_the_wire = b"".join(r.iter_raw())
    assert len(on_the_wire) <= MAX_GZIPPED


def test_integrity_hash_matches_the_served_bytes_and_the_readme(herald_server: HeraldServer) -> None:
    served = fetch(herald_server, **{"Accept-Encoding": "identity"}).content
    assert widget_integrity() == integrity_for(served)
    assert re.fullmatch(r"sha384-[A-Za-z0-9+/]{64}", widget_integrity())
    assert integrity_for(served + b" ") != widget_integrity()
    readme = (REPO / "README.md").read_text()
    assert widget_integrity() in readme, "README.md's Inbox widget snippet shows a stale SRI hash: update it"
    assert widget_integrity() in widget_snippet(base_url="https://herald.example")


def test_widget_ships_with_the_installed_package() -> None:
    assert widget_source() == SOURCE.read_bytes()
    assert widget_asset().gzipped.startswith(b"\x1f\x8b")
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'notifications = ["static/**/*", "templates/**/*"]' in pyproject


@pytest.mark.browser
def test_widget_loads_pinned_by_integrity_under_a_strict_csp(
    context: BrowserContext, herald_server: HeraldServer, host_pages: HostPages
) -> None:
    page = context.new_page()
    watched = watch(page)
    url = host_pages.add(
        inbox_page(herald_server, publishable_key="pk_live_unused", integrity=widget_integrity()),
        csp=strict_csp(herald_server),
    )
    page.goto(url)
    page.wait_for_function("customElements.get('herald-inbox') !== undefined")
    bell = page.locator("herald-inbox .bell")
    # The constructed stylesheet applied although the page allows no inline style.
    box = bell.bounding_box()
    assert box is not None and round(box["width"]) == 40 and round(box["height"]) == 40
    assert page.locator("herald-inbox .panel").is_hidden()
    assert watched.violations() == []
    assert watched.errors == []
    assert not [line for line in watched.console if "Content Security Policy" in line or "integrity" in line]


@pytest.mark.browser
def test_a_tampered_integrity_hash_keeps_the_widget_out(
    context: BrowserContext, herald_server: HeraldServer, host_pages: HostPages
) -> None:
    page = context.new_page()
    watched = watch(page)
    wrong = integrity_for(b"something else")
    page.goto(host_pages.add(inbox_page(herald_server, publishable_key="pk_live_unused", integrity=wrong)))
    page.wait_for_timeout(500)
    assert page.evaluate("customElements.get('herald-inbox') === undefined")
    assert any("integrity" in line for line in watched.console)
