"""In Chromium: the quickstart's live preview shows a notification sent from an HTTP client, and the activity
page shows its receipt, delivered and then read. Every page of this part of the portal passes axe (no serious
or critical violations) at 390 px and at desktop width, fits 390 px without sideways scrolling, runs under the
portal's CSP with no violation, and is screenshotted under build/screenshots/portal/."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from axe_playwright_python.base import AXE_SCRIPT
from django.db import connections
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from infra.browser import LAUNCH_ARGS, BrowserMissingError, executable_path
from notifications import services
from tests.portal.conftest import Team
from tests.portal.send_support import portal_send
from tests.servers import HeraldServer

pytestmark = pytest.mark.browser
T = TypeVar("T")

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots" / "portal"

WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
  e.violatedDirective + ' ' + e.blockedURI));
"""


_db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portal-db")


def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Django's database outside Playwright's event loop (the sync API runs one in this thread)."""

    def call() -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return _db_thread.submit(call).result(timeout=60)


@pytest.fixture
def browser(team: Team) -> Iterator[Browser]:
    """Chromium, started after the personas exist (their fixture needs the database without an event loop)."""
    try:
        path = executable_path()
    except BrowserMissingError as error:
        pytest.fail(str(error), pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=LAUNCH_ARGS, timeout=30_000)
        yield launched
        launched.close()


def signed_in(browser: Browser, server: HeraldServer, user: Any, width: int) -> BrowserContext:
    """A browser context with the user's session cookie (made through Django's test client, same database)."""

    def session_cookie() -> str:
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    cookie = in_thread(session_cookie)
    context = browser.new_context(viewport={"width": width, "height": 800}, base_url=server.url)
    context.set_default_timeout(10_000)
    context.add_cookies([{"name": "sessionid", "value": cookie, "url": server.url}])
    context.add_init_script(WATCH)
    return context


def axe_serious(page: Page) -> list[dict[str, Any]]:
    page.evaluate(AXE_SCRIPT)
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert results["testEngine"]["name"] == "axe-core"
    assert results["passes"] or results["incomplete"] or results["violations"]  # axe really ran
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def eventually(check: Callable[[], bool], timeout: float = 10.0, every: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError("condition not met in time")


def receipt(page: Page, recipient: str, kind: str) -> str | None:
    return page.locator(f'tr[data-recipient="{recipient}"] [data-receipt="{kind}"]').first.get_attribute("data-done")


def test_live_preview_then_delivered_and_read_receipts_on_the_activity_page(
    browser: Browser, herald_server: HeraldServer, team: Team
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    slug = team.acme.organization.slug
    context = signed_in(browser, herald_server, team.developer, 1200)
    page = context.new_page()
    page.goto(f"/o/{slug}/quickstart/")
    page.get_by_role("button", name="Start the live preview").click()
    inbox = page.locator("herald-inbox")
    inbox.wait_for()
    eventually(lambda: page.evaluate("document.querySelector('herald-inbox').state") == "live")

    # A notification sent from an HTTP client with the organisation's secret key reaches the preview live.
    response = httpx.post(
        f"{herald_server.url}/v1/notifications",
        json={"to": ["portal-preview"], "title": "Journey hello", "body": "From an HTTP client"},
        headers={"Authorization": f"Bearer {team.acme.secret_key}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]
    eventually(lambda: page.evaluate("document.querySelector('herald-inbox').unreadCount") == 1)
    inbox.locator("[part~='bell']").click()
    inbox.locator("[part~='item-title']", has_text="Journey hello").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "quickstart-live-preview.png"), full_page=True)

    # The activity page shows the receipt: delivered (written to the preview's socket), not yet read.
    activity = context.new_page()

    def shows(kind: str) -> bool:
        activity.goto(f"/o/{slug}/activity/")
        return receipt(activity, "portal-preview", kind) == "yes"

    eventually(lambda: shows("delivered"))
    assert receipt(activity, "portal-preview", "read") == "no"
    activity.screenshot(path=str(SCREENSHOTS / "activity-delivered.png"), full_page=True)

    # Read in the widget: the activity page shows it read.
    inbox.locator("[part~='item-toggle']").first.click()
    eventually(lambda: page.evaluate("document.querySelector('herald-inbox').unreadCount") == 0)
    eventually(lambda: shows("read"))
    activity.screenshot(path=str(SCREENSHOTS / "activity-read.png"), full_page=True)
    activity.goto(f"/o/{slug}/activity/{message_id}")
    assert receipt(activity, "portal-preview", "delivered") == "yes"
    assert receipt(activity, "portal-preview", "read") == "yes"
    for p in (page, activity):
        assert p.evaluate("window.__violations") == []
    context.close()


def _sample_data(team: Team) -> tuple[services.SendResult, int]:
    org = team.acme.organization
    with team.acme.activate():
        topic, _ = services.topic_upsert(key="deploys", name="Deploys")
        subscriber, _ = services.subscriber_upsert(
            external_id="user-42", fields={"email": "dana@example.com", "name": "Dana"}
        )
        services.topic_subscribers_add(organization_id=org.pk, topic=topic, external_ids=["user-42"])
    sent = portal_send(team.acme, title="Deploy finished", body="All green", to=["user-42", "u_2"])
    portal_send(team.acme, title="To the topic", topic="deploys")
    return sent, subscriber.pk


@pytest.mark.parametrize("width", [390, 1200])
def test_pages_pass_axe_fit_the_width_and_are_screenshotted(
    browser: Browser, herald_server: HeraldServer, team: Team, width: int
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    org = team.acme.organization
    sent, pk = in_thread(_sample_data, team)
    context = signed_in(browser, herald_server, team.owner, width)
    page = context.new_page()
    base = f"/o/{org.slug}"
    pages = {
        "activity": f"{base}/activity/",
        "activity-filtered": f"{base}/activity/?subscriber=user-42",
        "activity-message": f"{base}/activity/{sent.id}",
        "subscribers": f"{base}/subscribers/?q=user",
        "subscriber": f"{base}/subscribers/{pk}",
        "subscriber-erase": f"{base}/subscribers/{pk}/erase",
        "quickstart": f"{base}/quickstart/",
        "usage": f"{base}/usage/",
    }
    problems: dict[str, Any] = {}
    for name, path in pages.items():
        response = page.goto(path)
        assert response is not None and response.status == 200, (name, response and response.status)
        page.wait_for_load_state("networkidle")
        found = axe_serious(page)
        if found:
            problems[name] = found
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            problems[f"{name} overflow"] = overflow
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        assert page.evaluate("window.__violations") == [], name
    assert problems == {}
    context.close()
