"""A misconfigured widget tells the page what is wrong: a terminal error saying which, and the fix in the console."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import BrowserContext

from tests.widget.conftest import HostPages, WidgetOrg, _widget_org, off_loop, watch

pytestmark = pytest.mark.browser


def _org_for_another_origin(widget_org: WidgetOrg) -> WidgetOrg:
    other = _widget_org("https://app.elsewhere.test", widget_org.server)
    return other


def test_an_origin_that_is_not_allowed_is_a_terminal_error_naming_the_fix(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    elsewhere = off_loop(_org_for_another_origin, widget_org)
    page = context.new_page()
    inbox = watch(page)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(host_pages.add(elsewhere.page_html(f"u_{uuid.uuid4().hex[:8]}")))
    inbox.wait_state("error")
    inbox.open_panel()
    error = page.locator("herald-inbox [part=error]")
    assert error.text_content() == "Notifications are not enabled for this site (origin not allowed)."
    assert page.locator("herald-inbox [part=status]").is_hidden()  # not "Reconnecting…"
    warnings = [line for line in inbox.console if line.startswith("warning: Herald:")]
    assert len(warnings) == 1, inbox.console
    assert f"this page's origin {host_pages.origin} is not allowed" in warnings[0]
    assert f"--origin {host_pages.origin}" in warnings[0]
    assert [e["detail"]["reason"] for e in inbox.events("herald:error")] == ["origin"]
    attempts = len(sockets)
    page.wait_for_timeout(3000)  # the backoff would have reconnected by now
    assert inbox.state() == "error" and len(sockets) == attempts


def test_a_refused_proof_is_a_terminal_error_naming_the_signing_secret(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    sid = f"u_{uuid.uuid4().hex[:8]}"
    page = context.new_page()
    inbox = watch(page)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(host_pages.add(widget_org.page_html(sid, subscriber_hash="0" * 64)))
    inbox.wait_state("error")
    inbox.open_panel()
    error = page.locator("herald-inbox [part=error]")
    assert error.text_content() == "Notifications could not be loaded: the sign-in was refused."
    warnings = [line for line in inbox.console if line.startswith("warning: Herald:")]
    assert len(warnings) == 1, inbox.console
    assert f'the subscriber proof for "{sid}" was refused' in warnings[0]
    assert "herald show_signing_secret" in warnings[0]
    assert [e["detail"]["reason"] for e in inbox.events("herald:error")] == ["proof"]
    attempts = len(sockets)
    page.wait_for_timeout(3000)
    assert inbox.state() == "error" and len(sockets) == attempts


def test_a_german_page_reads_the_origin_error_in_german(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    elsewhere = off_loop(_org_for_another_origin, widget_org)
    page = context.new_page()
    inbox = watch(page)
    html = elsewhere.page_html(f"u_{uuid.uuid4().hex[:8]}", extra={"locale": "de"})
    page.goto(host_pages.add(html))
    inbox.wait_state("error")
    inbox.open_panel()
    assert page.locator("herald-inbox [part=error]").text_content() == (
        "Benachrichtigungen sind für diese Website nicht freigegeben (Origin nicht erlaubt)."
    )
