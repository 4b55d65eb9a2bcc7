"""The portal journey in Chromium: sign up and confirm the e-mail, land in a new organisation, create a secret key,
send with it, invite a second user who accepts, revoke the key and see the next API call refused."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.portal.conftest import PortalServer, new_context, page_problems, screenshot

pytestmark = pytest.mark.browser

PASSWORD = "journey password 9f3c1"


def link_in(message: str, path: str) -> str:
    found = re.search(r"(https?://\S+" + re.escape(path) + r"\S*)", message)
    assert found, message
    return found.group(1)


def wait_for_email(portal_server: PortalServer, address: str, count: int = 1) -> str:
    from tests.widget.conftest import eventually

    return str(eventually(lambda: (m := portal_server.emails_to(address)) and len(m) >= count and m[-1], timeout=10))


def sign_up_and_confirm(page: Any, portal_server: PortalServer, email: str, shots: str | None = None) -> None:
    page.goto(portal_server.url + "/accounts/signup/")
    page.locator("#id_email").fill(email)
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    if shots:
        screenshot(page, f"{shots}-signup")
    page.get_by_role("button", name="Sign Up").click()
    page.get_by_role("heading", name="Verify Your Email Address").wait_for()
    if shots:
        screenshot(page, f"{shots}-verify-email")
    page.goto(link_in(wait_for_email(portal_server, email), "/accounts/confirm-email/"))
    if shots:
        screenshot(page, f"{shots}-confirm-email")
    page.get_by_role("button", name="Confirm").click()


def send(portal_server: PortalServer, key: str) -> httpx.Response:
    return httpx.post(
        f"{portal_server.url}/v1/notifications",
        json={"to": ["u_journey"], "title": "Hello from the journey"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def test_sign_up_create_a_key_send_invite_and_revoke(browser: Any, portal_server: PortalServer) -> None:
    owner_email = f"owner-{uuid.uuid4().hex[:8]}@example.test"
    invitee_email = f"dev-{uuid.uuid4().hex[:8]}@example.test"
    owner_ctx = new_context(browser)
    page = owner_ctx.new_page()

    page.goto(portal_server.url + "/")
    screenshot(page, "01-front-door")
    page.get_by_role("link", name="Create an account").click()
    sign_up_and_confirm(page, portal_server, owner_email, shots="02")

    # Signed in, no organisation yet: create one and land in it.
    page.get_by_role("heading", name="Create your organisation").wait_for()
    screenshot(page, "03-new-organisation")
    page.get_by_label("Organisation name").fill("Journey Corp")
    page.get_by_role("button", name="Create organisation").click()
    page.get_by_role("heading", name="Journey Corp").wait_for()
    slug = page.url.rstrip("/").rsplit("/", 1)[-1]
    assert page.url == f"{portal_server.url}/o/{slug}/"
    screenshot(page, "04-overview")

    # A secret key, shown once, sends a notification.
    page.get_by_role("link", name="API keys").click()
    screenshot(page, "05-keys")
    page.get_by_role("link", name="Create key").click()
    page.get_by_label("Name").fill("backend")
    page.get_by_label("Kind").select_option("secret")
    screenshot(page, "06-key-new")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#issued-key").inner_text().strip()
    assert key.startswith("sk_live_")
    owner_ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=portal_server.url)
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == key  # portal.js copied the whole key
    screenshot(page, "07-key-created")
    sent = send(portal_server, key)
    assert sent.status_code == 202, sent.text
    page.get_by_role("link", name="Done").click()
    page.get_by_role("button", name="Reveal signing secret").click()
    assert page.locator("#signing-secret-text").inner_text().startswith("whsk_")
    screenshot(page, "08-signing-secret")

    # Invite a second user, who signs up with the invited address and accepts.
    page.get_by_role("link", name="Members").click()
    page.get_by_label("E-mail address").fill(invitee_email)
    page.get_by_label("Role").select_option("developer")
    page.get_by_role("button", name="Send invitation").click()
    page.get_by_text(f"Invitation sent to {invitee_email}").wait_for()
    screenshot(page, "09-members-invited")
    invite_link = link_in(wait_for_email(portal_server, invitee_email), "/invite/")

    invitee_ctx = new_context(browser)
    invitee = invitee_ctx.new_page()
    invitee.goto(invite_link)
    invitee.get_by_role("heading", name="Join Journey Corp").wait_for()
    screenshot(invitee, "10-invitation-signed-out")
    sign_up_and_confirm(invitee, portal_server, invitee_email)
    invitee.goto(invite_link)
    screenshot(invitee, "11-invitation")
    invitee.get_by_role("button", name="Accept invitation").click()
    invitee.get_by_role("heading", name="Journey Corp").wait_for()
    assert invitee.url == f"{portal_server.url}/o/{slug}/"
    assert "you are developer" in invitee.locator("main").inner_text()
    invitee.goto(invite_link)  # a second use is refused
    invitee.get_by_role("heading", name="This invitation was used already").wait_for()

    page.reload()
    assert invitee_email in page.locator("main").inner_text()

    # Revoke the key; the next call with it is refused.
    page.get_by_role("link", name="API keys").click()
    page.get_by_role("link", name=re.compile(r"^Revoke")).first.click()
    screenshot(page, "12-key-revoke")
    page.get_by_role("button", name="Revoke key").click()
    page.get_by_text("revoked").first.wait_for()
    screenshot(page, "13-key-revoked")
    refused = send(portal_server, key)
    assert refused.status_code == 401, refused.text

    page.get_by_role("link", name="Audit log").click()
    audit = page.locator("main").inner_text()
    for action in ("Organisation created", "Key created", "Member invited", "Member joined", "Key revoked"):
        assert action in audit
    screenshot(page, "14-audit")

    for watched in (page, invitee):
        assert page_problems(watched) == {"violations": [], "errors": []}
    owner_ctx.close()
    invitee_ctx.close()
