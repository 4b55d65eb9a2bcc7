"""Every portal page at 390 px: axe-core finds no serious or critical violation, nothing scrolls sideways, the
strict CSP is never violated; the keyboard alone creates a key. Screenshots under build/screenshots/portal/."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from axe_playwright_python.base import AXE_SCRIPT

from tenants.models import ApiKey, Invitation, Membership
from tenants.services import api_key_create, organization_create
from tests.conftest import unique_slug
from tests.portal.conftest import (
    PortalServer,
    browser_user,
    new_context,
    off_loop,
    page_problems,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.browser


def axe_serious(page: Any) -> list[dict[str, Any]]:
    """Serious and critical violations axe-core reports for the whole page."""
    page.evaluate(AXE_SCRIPT)
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert results["testEngine"]["name"] == "axe-core"
    assert results["passes"] or results["incomplete"] or results["violations"]  # axe really ran
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def sideways_overflow(page: Any) -> int:
    """How many pixels the page is wider than the viewport (0: no horizontal scroll)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


@dataclass
class Setup:
    owner: Any
    slug: str
    secret_id: int
    publishable_id: int
    teammate_id: int
    invitation_link: str


def _setup() -> Setup:
    from portal.invites import invitation_token

    owner = browser_user("a11y-owner")
    organization = organization_create(name="Accessible Inc", slug=unique_slug("a11y"), owner=owner)
    secret = api_key_create(organization=organization, kind="secret", name="backend", actor=owner).api_key
    publishable = api_key_create(
        organization=organization, kind="publishable", name="web app", allowed_origins=["https://app.example.test"]
    ).api_key
    teammate = Membership.objects.create(organization=organization, user=browser_user("a11y-dev"), role="developer")
    invitation = Invitation.objects.create(organization=organization, email="later@example.test", role="viewer")
    return Setup(
        owner=owner,
        slug=organization.slug,
        secret_id=secret.pk,
        publishable_id=publishable.pk,
        teammate_id=teammate.pk,
        invitation_link=f"/invite/{invitation_token(invitation)}",
    )


def check(page: Any, name: str) -> list[str]:
    """What is wrong with the page now (empty: nothing); screenshots it."""
    page.wait_for_load_state("load")
    screenshot(page, f"narrow-{name}")
    wrong = [f"{name}: axe {v}" for v in axe_serious(page)]
    overflow = sideways_overflow(page)
    if overflow > 0:
        widest = page.evaluate(
            """[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > innerWidth)
               .slice(0, 3).map((e) => e.tagName + '.' + e.className)"""
        )
        wrong.append(f"{name}: {overflow}px wider than the viewport: {widest}")
    problems = page_problems(page)
    wrong += [f"{name}: {kind} {p}" for kind, found in problems.items() for p in found]
    return wrong


def test_every_portal_page_passes_axe_and_fits_390px(browser: Any, portal_server: PortalServer) -> None:
    setup = off_loop(_setup)
    url = portal_server.url
    org = f"{url}/o/{setup.slug}"
    context = new_context(browser, width=390, height=844)
    page = context.new_page()
    wrong: list[str] = []

    for name, path in [
        ("front-door", "/"),
        ("sign-in", "/accounts/login/"),
        ("sign-up", "/accounts/signup/"),
        ("password-reset", "/accounts/password/reset/"),
        ("invitation-signed-out", setup.invitation_link),
        ("not-found", "/o/no-such-organisation/"),
    ]:
        page.goto(url + path)
        wrong += check(page, name)

    sign_in(page, url, setup.owner)
    for name, path in [
        ("overview", "/"),
        ("keys", "/keys/"),
        ("key-new", "/keys/new"),
        ("key-roll", f"/keys/{setup.secret_id}/roll"),
        ("key-revoke", f"/keys/{setup.secret_id}/revoke"),
        ("key-origins", f"/keys/{setup.publishable_id}/origins"),
        ("signing-secret-rotate", "/keys/signing-secret/rotate"),
        ("members", "/members/"),
        ("member-remove", f"/members/{setup.teammate_id}/remove"),
        ("audit", "/audit/"),
        ("settings", "/settings/"),
        ("organization-delete", "/settings/delete"),
        ("usage", "/usage/"),
        ("billing", "/billing/"),  # Stripe is not configured here: the page says so
    ]:
        page.goto(org + path)
        wrong += check(page, name)

    page.goto(org + "/keys/")
    page.get_by_role("button", name="Reveal signing secret").click()
    page.locator("#signing-secret-text").wait_for()
    wrong += check(page, "signing-secret-revealed")
    page.goto(org + "/keys/new")
    page.get_by_role("button", name="Create key").click()
    page.locator("#issued-key").wait_for()
    wrong += check(page, "key-created")
    page.goto(org + "/settings/delete")
    page.get_by_role("button", name="Delete organisation").click()  # nothing typed: the error state
    wrong += check(page, "organization-delete-error")
    page.goto(url + "/new")
    wrong += check(page, "organization-new")
    page.goto(url + "/accounts/2fa/")
    wrong += check(page, "two-factor")
    page.goto(url + "/accounts/password/change/")
    wrong += check(page, "password-change")
    page.goto(url + "/accounts/email/")
    wrong += check(page, "email")
    page.goto(org + "/")
    page.locator("details.switcher summary").click()
    wrong += check(page, "switcher-open")

    context.close()
    assert wrong == [], "\n".join(wrong)


def test_a_key_can_be_created_with_the_keyboard_alone(browser: Any, portal_server: PortalServer) -> None:
    setup = off_loop(_setup)
    context = new_context(browser, width=390, height=844)
    page = context.new_page()
    sign_in(page, portal_server.url, setup.owner)
    page.goto(f"{portal_server.url}/o/{setup.slug}/keys/")

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(40):  # to the "Create key" link, by Tab only
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Create key":
            break
    else:
        raise AssertionError("Tab never reached Create key")
    focused_ring = page.evaluate("getComputedStyle(document.activeElement).boxShadow")
    assert focused_ring != "none"  # the focus is visible
    page.keyboard.press("Enter")
    page.wait_for_url("**/keys/new")
    page.keyboard.press("Tab")
    while page.evaluate("document.activeElement.name") != "name":
        page.keyboard.press("Tab")
    page.keyboard.type("typed by keyboard")
    page.keyboard.press("Enter")  # submits the form
    page.locator("#issued-key").wait_for()
    assert page.locator("#issued-key").inner_text().startswith("sk_live_")
    names = off_loop(lambda: list(ApiKey.objects.filter(organization__slug=setup.slug).values_list("name", flat=True)))
    assert "typed by keyboard" in names
    context.close()
