"""Hostile content renders as inert text: no script runs, no element is injected, no bad link is followed."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import BrowserContext

from notifications import sending
from tests.widget.conftest import HostPages, WidgetOrg, eventually, off_loop, watch

pytestmark = pytest.mark.browser

MARKUP = [
    "<script>window.__pwned=1;alert(1)</script>",
    '<img src=x onerror="window.__pwned=1;alert(1)">',
    '<svg onload="window.__pwned=1;alert(1)"><script>alert(2)</script></svg>',
    '<svg><animate onbegin="window.__pwned=1" attributeName=x dur=1s></svg>',
    '"><iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
    '<a href="javascript:window.__pwned=1">click me</a>',
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__pwned=1></style></mglyph></table></mtext></math>",
    "</span></li></ul><img src=x onerror=window.__pwned=1>",
    '<div style="position:fixed;inset:0;background:red">cover</div>',
    "{{constructor.constructor('window.__pwned=1')()}}",
]

# The API refuses these (http/https only); they are written through the send service directly,
# as data from an older release or an import could hold them, to prove the widget drops them itself.
BAD_URLS = [
    "javascript:window.__pwned=1",
    "JaVaScRiPt:window.__pwned=1",
    " javascript:window.__pwned=1",
    "java\tscript:window.__pwned=1",
    "data:text/html,<script>window.__pwned=1</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
]
ODD_BUT_HTTP = 'https://example.com/?q="><img src=x onerror=window.__pwned=1>'

# Every element the widget itself creates; anything else in its shadow root was injected.
WIDGET_TAGS = {"button", "span", "svg", "path", "section", "div", "h2", "p", "ul", "li", "a", "time"}

DOM_REPORT = """() => {
  const root = document.querySelector('herald-inbox').shadowRoot;
  const all = [...document.querySelectorAll('*'), ...root.querySelectorAll('*')];
  return {
    tags: [...new Set([...root.querySelectorAll('*')].map((el) => el.localName))],
    handlers: all.flatMap((el) => [...el.attributes].filter((a) => /^on/i.test(a.name)).map((a) => a.name)),
    styled: all.filter((el) => el.hasAttribute('style')).length,
    svgs: root.querySelectorAll('svg').length,
    items: root.querySelectorAll('li').length,
    lightDom: [...document.querySelectorAll('img, iframe, svg, style, object, embed, math')].length,
    scripts: document.scripts.length,
    links: [...root.querySelectorAll('a')].map((a) => a.protocol),
    pwned: window.__pwned === undefined ? null : window.__pwned,
  };
}"""


def _send_raw(widget_org: WidgetOrg, subscriber_id: str, title: str, action_url: str) -> None:
    organization = widget_org.org.organization
    sending.notification_send_blocking(
        sender=sending.Sender(organization_id=organization.pk, schema_name=organization.schema_name),
        draft=sending.NotificationDraft(title=title, to=[subscriber_id], action_url=action_url),
    )


def test_xss_corpus_renders_as_inert_text(
    context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg
) -> None:
    sid = f"u_{uuid.uuid4().hex[:8]}"
    for n, url in enumerate(BAD_URLS):
        off_loop(_send_raw, widget_org, sid, f"bad link {n}", url)
    off_loop(_send_raw, widget_org, sid, "odd link", ODD_BUT_HTTP)
    page = context.new_page()
    watched = watch(page)
    page.goto(host_pages.add(widget_org.page_html(sid)))  # no CSP here: the widget alone must hold
    watched.wait_state("live")
    eventually(lambda: len(watched.items()) == len(BAD_URLS) + 1)
    # Markup in title and body, delivered live over the socket.
    for payload in MARKUP:
        widget_org.send(sid, payload, body=payload)
    total = len(BAD_URLS) + 1 + len(MARKUP)
    eventually(lambda: len(watched.items()) == total)
    watched.open_panel()
    page.wait_for_timeout(300)  # give any injected onload/onerror/animation a chance to fire

    rendered = {item["title"]: item for item in watched.items()}
    for payload in MARKUP:
        assert rendered[payload]["body"] == payload  # shown verbatim, as text
    for n in range(len(BAD_URLS)):
        assert rendered[f"bad link {n}"]["link"] is None  # dropped: a plain button, no href
    # Nothing but the item's own texts inside it (no stray text nodes).
    main = page.locator("herald-inbox li", has_text="bad link 0").locator(".main")
    assert main.text_content() == "Unread: bad link 0now"
    assert rendered["odd link"]["link"] == "https://example.com/?q=%22%3E%3Cimg%20src=x%20onerror=window.__pwned=1%3E"

    report = page.evaluate(DOM_REPORT)
    assert set(report["tags"]) <= WIDGET_TAGS, report["tags"]
    assert report["handlers"] == []
    assert report["styled"] == 0
    assert report["svgs"] == 1 + total  # the bell and one archive icon per item, nothing else
    assert report["lightDom"] == 0
    assert report["scripts"] == 1  # the widget's own module
    assert set(report["links"]) == {"https:"}

    # Clicking every item (the dropped links included) runs nothing and leaves the page.
    url = page.url
    for n in range(len(BAD_URLS)):
        page.locator("herald-inbox li", has_text=f"bad link {n}").locator(".main").click()
    assert page.url == url
    assert page.evaluate(DOM_REPORT)["pwned"] is None
    assert watched.dialogs == []
    assert watched.errors == []
    assert watched.state() == "live"


def test_safe_url_keeps_only_http_links(context: BrowserContext, host_pages: HostPages, widget_org: WidgetOrg) -> None:
    page = context.new_page()
    page.goto(host_pages.add("<!doctype html><title>t</title>"))
    module = f"{widget_org.server.url}/widget/v1/herald.js"
    results = page.evaluate(
        "async ([module, urls]) => { const m = await import(module); return urls.map((u) => m.safeUrl(u)); }",
        [module, [*BAD_URLS, "", "https://ok.example/a?b=1", "http://ok.example/", "/orders/7"]],
    )
    assert results[: len(BAD_URLS)] == [""] * len(BAD_URLS)
    # A relative link resolves against the customer's page, like any link on it.
    assert results[len(BAD_URLS) :] == [
        "",
        "https://ok.example/a?b=1",
        "http://ok.example/",
        host_pages.origin + "/orders/7",
    ]
