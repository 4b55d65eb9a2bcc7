"""In Chromium: the quickstart's live preview shows a notification sent from an HTTP client, and the activity
page shows its receipt, delivered and then read. Every page of this part of the portal passes axe (no serious
or critical violations) at 390 px and at desktop width, fits 390 px without sideways scrolling, runs under the
portal's CSP with no violation, and is screenshotted under build/screenshots/portal/."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from axe_playwright_python.base import AXE_SCRIPT
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page

from notifications import services
from tenants.models import Membership
from tests.conftest import Org, make_org
from tests.portal.conftest import SCREENSHOTS, WATCH_CSP, PortalServer, off_loop, page_problems, portal_user
from tests.portal.send_support import portal_send

pytestmark = pytest.mark.browser


@dataclass
class Acme:
    """Acme with a developer and an owner (made on the database thread: Playwright's loop runs in this one)."""

    org: Org
    owner: User
    developer: User


def _acme() -> Acme:
    owner, developer = portal_user("journey-owner"), portal_user("journey-developer")
    org = make_org("Acme", owner=owner)
    Membership.objects.create(organization=org.organization, user=developer, role="developer")
    return Acme(org=org, owner=owner, developer=developer)


@pytest.fixture
def acme_team() -> Acme:
    return off_loop(_acme)


def signed_in(browser: Browser, server: PortalServer, user: User, width: int) -> BrowserContext:
    """A browser context with the user's session cookie (made through Django's test client, same database)."""

    def session_cookie() -> str:
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    cookie = off_loop(session_cookie)
    context = browser.new_context(viewport={"width": width, "height": 800}, base_url=server.url)
    context.set_default_timeout(10_000)
    context.add_cookies([{"name": "sessionid", "value": cookie, "url": server.url}])
    context.add_init_script(WATCH_CSP)
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
    browser: Browser, portal_server: PortalServer, acme_team: Acme
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    slug = acme_team.org.organization.slug
    context = signed_in(browser, portal_server, acme_team.developer, 1200)
    page = context.new_page()
    page.goto(f"/o/{slug}/quickstart/")
    page.get_by_role("button", name="Start the live preview").click()
    inbox = page.locator("herald-inbox")
    inbox.wait_for()
    eventually(lambda: page.evaluate("document.querySelector('herald-inbox').state") == "live")

    # A notification sent from an HTTP client with the organisation's secret key reaches the preview live.
    response = httpx.post(
        f"{portal_server.url}/v1/notifications",
        json={"to": ["portal-preview"], "title": "Journey hello", "body": "From an HTTP client"},
        headers={"Authorization": f"Bearer {acme_team.org.secret_key}"},
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

    # The quickstart's own form sends through the same service; the preview shows it live, no reload.
    page.locator("#id_title").fill("Sent from the form")
    page.locator("#id_body").fill("Typed in the portal")
    page.get_by_role("button", name="Send test notification").click()
    page.locator("#test-result", has_text="Sent").wait_for()
    inbox.locator("[part~='item-title']", has_text="Sent from the form").wait_for(state="attached")
    eventually(lambda: page.evaluate("document.querySelector('herald-inbox').unreadCount") == 1)
    page.screenshot(path=str(SCREENSHOTS / "quickstart-test-sent.png"), full_page=True)
    for p in (page, activity):
        assert page_problems(p) == {"violations": [], "errors": []}
    context.close()


def _sample_data(acme: Acme) -> tuple[services.SendResult, int]:
    org = acme.org.organization
    with acme.org.activate():
        topic, _ = services.topic_upsert(key="deploys", name="Deploys")
        subscriber, _ = services.subscriber_upsert(
            external_id="user-42", fields={"email": "dana@example.com", "name": "Dana"}
        )
        services.topic_subscribers_add(organization_id=org.pk, topic=topic, external_ids=["user-42"])
    sent = portal_send(acme.org, title="Deploy finished", body="All green", to=["user-42", "u_2"])
    portal_send(acme.org, title="To the topic", topic="deploys")
    return sent, subscriber.pk


@pytest.mark.parametrize("width", [390, 1200])
def test_pages_pass_axe_fit_the_width_and_are_screenshotted(
    browser: Browser, portal_server: PortalServer, acme_team: Acme, width: int
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    org = acme_team.org.organization
    sent, pk = off_loop(_sample_data, acme_team)
    context = signed_in(browser, portal_server, acme_team.owner, width)
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
        assert page_problems(page)["violations"] == [], name
    assert problems == {}
    context.close()
