"""<herald-inbox> in Chromium against a real Herald (uvicorn, PostgreSQL, Redis): live, synced, lossless."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import BrowserContext

from notifications.widget import widget_source
from tests.servers import HeraldServer
from tests.widget.conftest import HostPages, Watched, WidgetOrg, eventually, watch

pytestmark = pytest.mark.browser


def open_inbox(context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg, subscriber_id: str) -> Watched:
    page = context.new_page()
    watched = watch(page)
    page.goto(host_pages.add(widget_org.page_html(subscriber_id)))
    watched.wait_state("live")
    return watched


def subscriber() -> str:
    return f"u_{uuid.uuid4().hex[:8]}"


def test_badge_shows_the_unread_count(context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg) -> None:
    sid = subscriber()
    for n in range(3):
        widget_org.send(sid, f"Invoice {n}")
    inbox = open_inbox(context, host_pages, widget_org, sid)
    eventually(lambda: inbox.badge() == "3")
    assert inbox.bell_label() == "Notifications, 3 unread"
    assert inbox.page.locator("herald-inbox .bell").get_attribute("aria-expanded") == "false"
    inbox.open_panel()
    assert inbox.page.locator("herald-inbox .bell").get_attribute("aria-expanded") == "true"
    assert [item["title"] for item in inbox.items()] == ["Invoice 2", "Invoice 1", "Invoice 0"]
    assert all(not item["read"] for item in inbox.items())
    # Unread is said, not only shown: the item's accessible name starts with it.
    names = inbox.page.locator("herald-inbox .main").all_text_contents()
    assert [name.split("Invoice")[0] for name in names] == ["Unread: "] * 3
    assert inbox.errors == [] and inbox.dialogs == []


def test_a_notification_sent_through_the_api_appears_without_reload(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    sid = subscriber()
    inbox = open_inbox(context, host_pages, widget_org, sid)
    inbox.page.evaluate("window.__same_document = true")
    inbox.open_panel()
    assert inbox.page.locator("herald-inbox .empty").is_visible()
    assert inbox.badge() is None
    sent = widget_org.send(sid, "Your export is ready", body="12 files, 3 MB", action_url="https://app.acme.test/e/1")
    eventually(lambda: [item["title"] for item in inbox.items()] == ["Your export is ready"])
    item = inbox.items()[0]
    assert item["id"] == sent["id"]
    assert item["body"] == "12 files, 3 MB"
    assert item["link"] == "https://app.acme.test/e/1"
    assert inbox.badge() == "1"
    assert inbox.page.locator("herald-inbox .empty").is_hidden()
    live = inbox.page.locator("herald-inbox [aria-live=polite]")
    assert live.text_content() == "New notification: Your export is ready"
    assert [event["detail"]["notification"]["id"] for event in inbox.events("herald:notification")] == [sent["id"]]
    assert inbox.page.evaluate("window.__same_document") is True


def test_marking_read_in_one_tab_updates_the_other(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    sid = subscriber()
    first = widget_org.send(sid, "First")
    widget_org.send(sid, "Second")
    tab_a = open_inbox(context, host_pages, widget_org, sid)
    tab_b = open_inbox(context, host_pages, widget_org, sid)
    eventually(lambda: tab_a.badge() == "2" and tab_b.badge() == "2")
    tab_a.open_panel()
    # No action URL: the item is a button that marks it read.
    tab_a.page.locator("herald-inbox li", has_text="First").locator(".main").click()
    assert tab_a.badge() == "1"
    eventually(lambda: tab_b.badge() == "1")
    eventually(lambda: {i["title"]: i["read"] for i in tab_b.items()} == {"First": True, "Second": False})
    read_name = tab_b.page.locator("herald-inbox li", has_text="First").locator(".main").text_content()
    assert read_name is not None and read_name.startswith("First")
    assert [e["detail"].get("id") for e in tab_a.events("herald:read")] == [first["id"]]
    assert any(e["detail"].get("remote") for e in tab_b.events("herald:read"))
    # And back: "mark all as read" in B clears A.
    tab_b.open_panel()
    tab_b.page.locator("herald-inbox .all").click()
    eventually(lambda: tab_a.badge() is None and all(i["read"] for i in tab_a.items()))
    assert tab_a.bell_label() == "Notifications"


def test_after_the_server_drops_the_socket_all_20_sent_meanwhile_show_once(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    """The widget talks to its own Herald process; the API calls go to another one (as behind a balancer)."""
    sid = subscriber()
    with HeraldServer() as edge:
        page = context.new_page()
        inbox = watch(page)
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(host_pages.add(widget_org.on(edge).page_html(sid)))
        inbox.wait_state("live")
        widget_org.send(sid, "Before")
        eventually(lambda: [i["title"] for i in inbox.items()] == ["Before"])
        edge.stop()
        inbox.wait_state("offline")
        assert page.locator("herald-inbox .note[part=status]").text_content() == "Connection lost. Reconnecting…"
        sent = [widget_org.send(sid, f"Missed {n}")["id"] for n in range(20)]
        edge.start()
        inbox.wait_state("live", timeout=30_000)
        expected = [f"Missed {n}" for n in reversed(range(20))] + ["Before"]
        eventually(lambda: [i["title"] for i in inbox.items()] == expected, timeout=10)
        ids = [i["id"] for i in inbox.items()]
        assert len(ids) == len(set(ids)) == 21
        assert set(sent) <= set(ids)
        assert inbox.badge() == "21"
        assert page.locator("herald-inbox .note[part=status]").is_hidden()
        assert len(sockets) >= 2
        assert len(inbox.events("herald:notification")) == 21


def test_a_wrong_subscriber_hash_shows_an_error_not_an_inbox(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    victim = subscriber()
    widget_org.send(victim, "Private: your salary slip")
    page = context.new_page()
    inbox = watch(page)
    forged = widget_org.subscriber_hash("someone-else")
    page.goto(host_pages.add(widget_org.page_html(victim, subscriber_hash=forged)))
    inbox.wait_state("error")
    inbox.open_panel()
    error = page.locator("herald-inbox [part=error]")
    assert error.is_visible()
    assert error.text_content() == "Notifications could not be loaded: the sign-in was refused."
    assert inbox.items() == []
    assert inbox.badge() is None
    assert "salary" not in page.locator("herald-inbox").evaluate("el => el.shadowRoot.textContent")
    assert [e["type"] for e in inbox.events()] == ["herald:error"]
    page.wait_for_timeout(1000)
    assert inbox.state() == "error"  # it does not keep retrying a refused proof


def test_archive_load_more_and_keyboard(context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg) -> None:
    sid = subscriber()
    for n in range(23):
        widget_org.send(sid, f"Item {n:02d}")
    inbox = open_inbox(context, host_pages, widget_org, sid)
    page = inbox.page
    eventually(lambda: len(inbox.items()) == 20)
    # Keyboard: Tab to the bell, Enter opens and moves focus into the panel, arrows walk the items.
    page.locator("herald-inbox .bell").focus()
    page.keyboard.press("Enter")
    assert page.locator("herald-inbox .panel").is_visible()
    focused = "document.querySelector('herald-inbox').shadowRoot.activeElement"
    assert page.evaluate(f"{focused}.id") == "heading"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.evaluate(f"{focused}.closest('li').querySelector('.t').textContent") == "Item 21"
    page.keyboard.press("End")
    assert page.evaluate(f"{focused}.closest('li').querySelector('.t').textContent") == "Item 03"
    more = page.locator("herald-inbox [part=load-more]")
    assert more.is_visible()
    more.click()
    eventually(lambda: len(inbox.items()) == 23)
    assert [i["title"] for i in inbox.items()] == [f"Item {n:02d}" for n in reversed(range(23))]
    assert more.is_hidden()
    # Archive the top item from the keyboard: it goes, focus moves to the next one.
    page.locator("herald-inbox li", has_text="Item 22").locator(".arc").focus()
    page.keyboard.press("Enter")
    eventually(lambda: "Item 22" not in [i["title"] for i in inbox.items()])
    assert page.evaluate(f"{focused}.closest('li').querySelector('.t').textContent") == "Item 21"
    assert inbox.badge() == "22"
    page.keyboard.press("Escape")
    assert page.locator("herald-inbox .panel").is_hidden()
    assert page.evaluate(f"{focused}.className") == "bell"
    assert page.locator("herald-inbox .bell").get_attribute("aria-expanded") == "false"
    # A click elsewhere on the page closes it too.
    inbox.open_panel()
    page.locator("main p").click()
    assert page.locator("herald-inbox .panel").is_hidden()
    # So does tabbing out of it; moving within it does not.
    inbox.open_panel()
    page.keyboard.press("End")
    page.keyboard.press("Tab")  # to the last item's toggle
    page.keyboard.press("Tab")  # its archive button
    assert page.locator("herald-inbox .panel").is_visible()
    page.keyboard.press("Tab")  # out, to the page's own link
    assert page.evaluate("document.activeElement.textContent") == "Your account"
    assert page.locator("herald-inbox .panel").is_hidden()
    assert page.locator("herald-inbox .bell").get_attribute("aria-expanded") == "false"
    # The server agrees: archived is gone from the inbox, the count is 22.
    headers = {
        "X-Herald-Publishable-Key": widget_org.org.publishable_key,
        "X-Herald-Subscriber": sid,
        "X-Herald-Subscriber-Hash": widget_org.subscriber_hash(sid),
    }
    count = eventually(
        lambda: httpx.get(f"{widget_org.server.url}/v1/inbox/unread-count", headers=headers).json()["count"] == 22
    )
    assert count


def test_clicking_an_item_marks_it_read_and_follows_its_link(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    sid = subscriber()
    landing = host_pages.add("<!doctype html><title>Order 7</title><h1>Order 7</h1>")
    widget_org.send(sid, "Order 7 shipped", action_url=landing)
    inbox = open_inbox(context, host_pages, widget_org, sid)
    other = open_inbox(context, host_pages, widget_org, sid)
    eventually(lambda: inbox.badge() == "1")
    inbox.open_panel()
    with inbox.page.expect_navigation():
        inbox.page.locator("herald-inbox li", has_text="Order 7 shipped").locator("a.main").click()
    assert inbox.page.url == landing
    eventually(lambda: other.badge() is None and other.items()[0]["read"])


def test_locale_and_string_overrides(context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg) -> None:
    sid = subscriber()
    widget_org.send(sid, "Hallo")
    page = context.new_page()
    inbox = watch(page)
    page.goto(host_pages.add(widget_org.page_html(sid, extra={"locale": "de"})))
    inbox.wait_state("live")
    eventually(lambda: inbox.bell_label() == "Benachrichtigungen, 1 ungelesen")
    inbox.open_panel()
    assert page.locator("herald-inbox h2").text_content() == "Benachrichtigungen"
    assert page.locator("herald-inbox .all").text_content() == "Alle als gelesen markieren"
    page.evaluate("document.querySelector('herald-inbox').strings = {title: 'Postfach', markAll: 'Alles gelesen'}")
    assert page.locator("herald-inbox h2").text_content() == "Postfach"
    assert page.locator("herald-inbox .all").text_content() == "Alles gelesen"
    assert page.locator("herald-inbox [part=load-more]").text_content() == "Mehr laden"
    page.evaluate("document.querySelector('herald-inbox').setAttribute('locale', 'fr')")
    assert page.locator("herald-inbox .tog").get_attribute("aria-label") == "Marquer comme lu: Hallo"


def test_customers_restyle_it_with_custom_properties_and_parts(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    sid = subscriber()
    widget_org.send(sid, "Styled")
    css = host_pages.add(
        "herald-inbox { --herald-accent: rgb(1, 2, 3); --herald-radius: 3px; }"
        " herald-inbox::part(badge) { background: rgb(4, 5, 6); }"
        " herald-inbox::part(item-title) { letter-spacing: 2px; }",
        content_type="text/css; charset=utf-8",
    )
    page = context.new_page()
    inbox = watch(page)
    page.goto(host_pages.add(widget_org.page_html(sid, stylesheet=css, extra={"theme": "dark"})))
    inbox.wait_state("live")
    inbox.open_panel()
    style = "(el, prop) => getComputedStyle(el)[prop]"
    assert page.locator("herald-inbox .badge").evaluate(style, "backgroundColor") == "rgb(4, 5, 6)"
    assert page.locator("herald-inbox .all").evaluate(style, "color") == "rgb(1, 2, 3)"
    assert page.locator("herald-inbox .panel").evaluate(style, "borderTopLeftRadius") == "3px"
    assert page.locator("herald-inbox .t").evaluate(style, "letterSpacing") == "2px"
    # theme="dark" without the customer touching the background: the dark palette.
    assert page.locator("herald-inbox .panel").evaluate(style, "backgroundColor") == "rgb(22, 27, 34)"


def test_server_attribute_points_a_self_hosted_copy_at_herald(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    """A customer serving the module from its own origin names Herald with `server`."""
    sid = subscriber()
    widget_org.send(sid, "Found my way home")
    copy = host_pages.add(widget_source().decode(), content_type="text/javascript; charset=utf-8")
    page_html = widget_org.page_html(sid, extra={"server": widget_org.server.url + "/"}).replace(
        f"{widget_org.server.url}/widget/v1/herald.js", copy
    )
    assert copy in page_html
    page = context.new_page()
    inbox = watch(page)
    page.goto(host_pages.add(page_html))
    inbox.wait_state("live")
    assert [i["title"] for i in inbox.items()] == ["Found my way home"]
