"""Browser fixtures: Chromium through Playwright, a customer's page on its own origin, a Herald org for it.

The page that embeds the widget is served by a small HTTP server on 127.0.0.1
(another port, so another origin than Herald), exactly as a customer's app
would be; the organisation's publishable key allows that origin.
"""

from __future__ import annotations

import html
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from django.db import connections
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from infra.browser import LAUNCH_ARGS, BrowserMissingError, executable_path
from notifications.proofs import subscriber_hash
from tenants.models import SigningSecret
from tests.conftest import Org, make_org
from tests.servers import HeraldServer

T = TypeVar("T")

BUILD_DIR = Path(__file__).resolve().parents[2] / "build"
SCREENSHOTS = BUILD_DIR / "screenshots"


# --- the browser -------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the widget tests; no browser at all is a failure, not a skip."""
    try:
        path = executable_path()
    except BrowserMissingError as error:
        pytest.fail(str(error), pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=LAUNCH_ARGS, timeout=30_000)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 900, "height": 700})
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


# Recorded in every page before any script runs: CSP violations, dialogs and errors must stay empty.
WATCH = """
window.__herald = {violations: [], errors: [], events: []};
for (const type of ['herald:notification', 'herald:read', 'herald:error']) {
  document.addEventListener(type, (e) => window.__herald.events.push(
    {type, detail: JSON.parse(JSON.stringify(e.detail))}));
}
document.addEventListener('securitypolicyviolation', (e) => window.__herald.violations.push(
  e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || '')));
window.addEventListener('error', (e) => window.__herald.errors.push(String(e.message)));
"""


@dataclass
class Watched:
    """A page with what it printed, alerted and refused recorded."""

    page: Page
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        return list(self.page.evaluate("window.__herald.violations"))

    def state(self) -> str:
        return str(self.page.evaluate("document.querySelector('herald-inbox').state"))

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        found = list(self.page.evaluate("window.__herald.events"))
        return [event for event in found if kind is None or event["type"] == kind]

    def items(self) -> list[dict[str, Any]]:
        """The rendered inbox, top to bottom."""
        return list(
            self.page.evaluate(
                """[...document.querySelector('herald-inbox').shadowRoot.querySelectorAll('li')].map((li) => ({
                    id: li.dataset.id, title: li.querySelector('.t').textContent,
                    body: li.querySelector('.b') ? li.querySelector('.b').textContent : null,
                    read: li.classList.contains('read'),
                    link: li.querySelector('a.main') ? li.querySelector('a.main').href : null}))"""
            )
        )

    def badge(self) -> str | None:
        """The badge text, or None while it is hidden."""
        return self.page.evaluate(
            "(() => { const b = document.querySelector('herald-inbox').shadowRoot.querySelector('.badge');"
            " return b.hidden ? null : b.textContent; })()"
        )

    def bell_label(self) -> str:
        return str(self.page.locator("herald-inbox .bell").get_attribute("aria-label"))

    def open_panel(self) -> None:
        self.page.locator("herald-inbox .bell").click()
        self.page.locator("herald-inbox .panel").wait_for(state="visible")

    def wait_state(self, state: str, timeout: float = 10_000) -> None:
        # Polled from here: wait_for_function evals a string, which a strict CSP page refuses.
        probe = "() => { const el = document.querySelector('herald-inbox'); return el ? el.state : null; }"
        eventually(lambda: self.page.evaluate(probe) == state, timeout=timeout / 1000, interval=0.05)


def watch(page: Page) -> Watched:
    watched = Watched(page)
    page.add_init_script(WATCH)
    page.on("console", lambda message: watched.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: watched.errors.append(str(error)))

    def on_dialog(dialog: Any) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return watched


# --- a customer's page ---------------------------------------------------------------


class HostPages:
    """A customer's web app: pages a test registers, served from http://127.0.0.1:<port>."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[bytes, dict[str, str]]] = {}  # path -> (body, headers)
        self.routes: dict[str, Callable[[str], str]] = {}  # path -> handler(query) -> text/plain body
        pages, routes = self.pages, self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path, _, query = self.path.partition("?")
                if path in routes:
                    pages[path] = (routes[path](query).encode(), {"Content-Type": "text/plain"})
                body, headers = pages.get(self.path.split("?")[0], (b"not found", {}))
                self.send_response(200 if self.path.split("?")[0] in pages else 404)
                self.send_header("Cache-Control", "no-store")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, body: str, *, csp: str | None = None, content_type: str = "text/html; charset=utf-8") -> str:
        path = f"/app/{uuid.uuid4().hex}"
        headers = {"Content-Type": content_type, **({"Content-Security-Policy": csp} if csp else {})}
        self.pages[path] = (body.encode(), headers)
        return self.origin + path

    def route(self, handler: Callable[[str], str]) -> str:
        """A URL whose every GET answers `handler(query string)` as text (a customer's token endpoint)."""
        path = f"/api/{uuid.uuid4().hex}"
        self.routes[path] = handler
        return self.origin + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="package")
def host_pages() -> Iterator[HostPages]:
    pages = HostPages()
    yield pages
    pages.close()


def strict_csp(server: HeraldServer) -> str:
    """What a careful customer sets: nothing inline, nothing eval'd, Herald allowed by name.

    Trusted Types are enforced too: the widget writes no HTML, so it needs no policy.
    """
    return (
        f"default-src 'none'; script-src {server.url}; style-src 'self'; img-src 'self'; "
        f"connect-src {server.url} {server.ws_url}; base-uri 'none'; form-action 'none'; "
        "require-trusted-types-for 'script'; trusted-types 'none'"
    )


def inbox_page(
    server: HeraldServer,
    *,
    publishable_key: str,
    subscriber_id: str | None = None,
    subscriber_hash: str | None = None,
    extra: dict[str, str] | None = None,
    integrity: str | None = None,
    stylesheet: str | None = None,
) -> str:
    attrs = {"publishable-key": publishable_key, **(extra or {})}
    if subscriber_id is not None:
        attrs["subscriber-id"] = subscriber_id
    if subscriber_hash is not None:
        attrs["subscriber-hash"] = subscriber_hash
    rendered = " ".join(f'{name}="{html.escape(value)}"' for name, value in attrs.items())
    pin = f' integrity="{integrity}" crossorigin="anonymous"' if integrity else ""
    css = f'<link rel="stylesheet" href="{stylesheet}">' if stylesheet else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme app</title>
<script type="module" src="{server.url}/widget/v1/herald.js"{pin}></script>{css}</head>
<body><header><h1>Acme app</h1><nav aria-label="Account"><herald-inbox {rendered}></herald-inbox></nav></header>
<main><p>Welcome back. <a href="#account">Your account</a></p></main></body></html>"""


# --- Herald side -------------------------------------------------------------------------


@dataclass
class WidgetOrg:
    """An organisation whose publishable key allows the host pages' origin."""

    org: Org
    server: HeraldServer
    signing_secret: str

    def subscriber_hash(self, subscriber_id: str) -> str:
        """What the customer's backend computes for the page."""
        return subscriber_hash(self.signing_secret, subscriber_id)

    def on(self, server: HeraldServer) -> WidgetOrg:
        """The same organisation, its pages loading the widget from another Herald process."""
        return WidgetOrg(org=self.org, server=server, signing_secret=self.signing_secret)

    def send(self, subscriber_id: str, title: str, **fields: Any) -> dict[str, Any]:
        """POST /v1/notifications with the secret key, as the customer's backend does."""
        response = httpx.post(
            f"{self.server.url}/v1/notifications",
            json={"to": [subscriber_id], "title": title, **fields},
            headers={"Authorization": f"Bearer {self.org.secret_key}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        return dict(response.json())

    def page_html(self, subscriber_id: str, **kwargs: Any) -> str:
        return inbox_page(
            self.server,
            publishable_key=self.org.publishable_key,
            subscriber_id=subscriber_id,
            subscriber_hash=kwargs.pop("subscriber_hash", None) or self.subscriber_hash(subscriber_id),
            **kwargs,
        )


# Playwright's sync API keeps an event loop running in the test's thread, where Django
# refuses database calls (SynchronousOnlyOperation). Database work of these tests runs on
# this one worker thread instead, which has no loop and keeps a single connection.
_db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="widget-db")


def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` on the database thread and return its result."""
    return _db_thread.submit(fn, *args, **kwargs).result(timeout=60)


@pytest.fixture(scope="package", autouse=True)
def _close_db_thread_connection() -> Iterator[None]:
    yield
    off_loop(connections.close_all)


def _widget_org(origin: str, server: HeraldServer) -> WidgetOrg:
    org = make_org("Acme", origins=[origin])
    secrets = SigningSecret.objects.filter(organization=org.organization).order_by("-id")
    return WidgetOrg(org=org, server=server, signing_secret=str(secrets.values_list("secret", flat=True).first()))


@pytest.fixture
def widget_org(herald_server: HeraldServer, host_pages: HostPages) -> WidgetOrg:
    return off_loop(_widget_org, host_pages.origin, herald_server)


def eventually(check: Any, timeout: float = 10.0, interval: float = 0.1) -> Any:
    """Poll `check` until it returns a truthy value (returned) or time runs out (AssertionError)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last value: {last!r}")
