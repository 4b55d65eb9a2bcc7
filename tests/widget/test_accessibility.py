"""axe-core finds no serious violations in the open inbox, light and dark, under a strict CSP; screenshots."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import BrowserContext

from tests.widget.conftest import SCREENSHOTS, HostPages, WidgetOrg, eventually, strict_csp, watch

pytestmark = pytest.mark.browser

# A customer's app around the bell, from the app's own origin (style-src 'self').
APP_CSS = """
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; background: #f3f4f6; color: #111827; }
header { display: flex; align-items: center; justify-content: space-between; padding: 6px 24px;
         background: #1e293b; color: #f8fafc; }
header h1 { font-size: 18px; margin: 0; }
main { padding: 24px; }
a { color: #1d4ed8; }
@media (prefers-color-scheme: dark) { body { background: #0b0f14; color: #e5e7eb; } a { color: #93c5fd; } }
"""


def _axe(page: Any) -> list[dict[str, Any]]:
    """Serious and critical violations axe-core reports for the whole page, shadow DOM included."""
    page.evaluate(AXE_SCRIPT)
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert results["testEngine"]["name"] == "axe-core"
    assert results["passes"] or results["incomplete"] or results["violations"]  # axe really ran
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize(
    ("theme", "color_scheme", "panel_background"),
    [("light", "light", "rgb(255, 255, 255)"), ("auto", "dark", "rgb(22, 27, 34)")],
)
def test_open_inbox_has_no_serious_axe_violations_and_is_screenshotted(
    context: BrowserContext,
    host_pages: HostPages,
    widget_org: WidgetOrg,
    theme: str,
    color_scheme: str,
    panel_background: str,
) -> None:
    sid = f"u_{uuid.uuid4().hex[:8]}"
    widget_org.send(sid, "Welcome to Acme", body="Your workspace is ready.")
    widget_org.send(
        sid, "Invoice #1042 is due", body="€ 240.00, due on 1 December.", action_url="https://app.acme.test/billing"
    )
    read = widget_org.send(sid, "Alex mentioned you", body="“Can you review the Q4 plan?”")
    widget_org.send(
        sid, "Deploy finished", body="main → production in 2 m 14 s", action_url="https://app.acme.test/d/9"
    )

    page = context.new_page()
    page.emulate_media(color_scheme=color_scheme)  # type: ignore[arg-type]
    watched = watch(page)
    stylesheet = host_pages.add(APP_CSS, content_type="text/css; charset=utf-8")
    url = host_pages.add(
        widget_org.page_html(sid, extra={"theme": theme}, stylesheet=stylesheet), csp=strict_csp(widget_org.server)
    )
    page.goto(url)
    watched.wait_state("live")
    eventually(lambda: len(watched.items()) == 4)
    watched.open_panel()
    page.locator("herald-inbox li", has_text="Alex mentioned you").locator(".tog").click()
    eventually(lambda: watched.badge() == "3")
    assert {i["title"]: i["read"] for i in watched.items()}["Alex mentioned you"] is True
    assert read["id"] in [i["id"] for i in watched.items()]
    panel = page.locator("herald-inbox .panel")
    assert panel.evaluate("el => getComputedStyle(el).backgroundColor") == panel_background
    page.mouse.move(0, 0)  # no hover highlight in the picture

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"inbox-{color_scheme}.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 5_000

    assert _axe(page) == []
    # The bell's accessible name carries the count; the panel is labelled by its heading.
    assert watched.bell_label() == "Notifications, 3 unread"
    assert page.locator("herald-inbox .panel").get_attribute("aria-labelledby") == "heading"
    assert watched.violations() == []  # nothing of the widget was blocked by the strict CSP
    assert watched.errors == []


def test_axe_catches_a_violation_here(context: BrowserContext, host_pages: HostPages) -> None:
    """The check above can fail: the same harness reports a serious violation on a bad page."""
    page = context.new_page()
    page.goto(host_pages.add('<!doctype html><html lang="en"><title>x</title><button></button>'))
    assert [v["id"] for v in _axe(page)] == ["button-name"]
