"""Portal fixtures: the six personas of Acme (owner, admin, developer, viewer), Globex's member, and anonymous.

Each test client comes from its own made-up IP address, so allauth's per-IP rate limits (kept in Redis) of one
test never reach another.
"""

from __future__ import annotations

import itertools
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client

from tenants.models import Membership
from tests.conftest import Org, make_org
from tests.servers import HeraldServer

T = TypeVar("T")
_addresses = itertools.count(1)


def client_ip() -> str:
    n = next(_addresses) + uuid.uuid4().int % 60000
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def portal_user(label: str) -> User:
    tag = uuid.uuid4().hex[:8]
    # No password: these personas sign in with force_login, and hashing five passwords a test is slow.
    return User.objects.create_user(username=f"{label}-{tag}", email=f"{label}-{tag}@example.test", password=None)


def client_for(user: User | None) -> Client:
    client = Client(REMOTE_ADDR=client_ip())
    if user is not None:
        client.force_login(user)
    return client


@dataclass
class Team:
    """Acme with a member of each role, and Globex with one member."""

    acme: Org
    globex: Org
    owner: User
    admin: User
    developer: User
    viewer: User
    globex_member: User

    def user(self, persona: str) -> User | None:
        return None if persona == "anonymous" else getattr(self, persona)

    def membership(self, user: User) -> Membership:
        return Membership.objects.get(organization=self.acme.organization, user=user)


@pytest.fixture
def team() -> Team:
    owner, admin, developer, viewer = (portal_user(r) for r in ("owner", "admin", "developer", "viewer"))
    acme = make_org("Acme", owner=owner)
    for user, role in ((admin, "admin"), (developer, "developer"), (viewer, "viewer")):
        Membership.objects.create(organization=acme.organization, user=user, role=role)
    globex_member = portal_user("globex")
    globex = make_org("Globex", owner=globex_member, origins=["http://app.globex.test"])
    return Team(
        acme=acme,
        globex=globex,
        owner=owner,
        admin=admin,
        developer=developer,
        viewer=viewer,
        globex_member=globex_member,
    )


# --- the browser tests: Chromium and a Herald server whose e-mails land in files ------------------------------

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots" / "portal"


@dataclass
class PortalServer:
    """A real uvicorn serving Herald, with every e-mail it sends written to `outbox` (one file a message)."""

    server: HeraldServer
    outbox: Path

    @property
    def url(self) -> str:
        return self.server.url

    def emails_to(self, address: str) -> list[str]:
        found = []
        for path in sorted(self.outbox.glob("*.log"), key=lambda p: p.stat().st_mtime):
            text = path.read_text(errors="replace")
            for message in text.split("-" * 79):
                if f"To: {address}" in message:
                    found.append(message)
        return found


@pytest.fixture(scope="package")
def portal_server(django_db_setup: None) -> Iterator[PortalServer]:
    outbox = Path(tempfile.mkdtemp(prefix="herald-outbox-"))
    with HeraldServer(env={"HERALD_EMAIL_FILE_PATH": str(outbox)}) as server:
        yield PortalServer(server=server, outbox=outbox)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module; no browser at all is a failure, not a skip.

    Module-scoped: Playwright's sync API keeps an event loop running in the test thread while it lives, and
    Django refuses database calls there, so it must be gone before the portal's other tests run.
    """
    from playwright.sync_api import sync_playwright

    from infra.browser import LAUNCH_ARGS, BrowserMissingError, executable_path

    try:
        path = executable_path()
    except BrowserMissingError as error:
        pytest.fail(str(error), pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=LAUNCH_ARGS, timeout=30_000)
        yield launched
        launched.close()


WATCH_CSP = """
window.__portal = {violations: [], errors: []};
document.addEventListener('securitypolicyviolation', (e) => window.__portal.violations.push(
  e.violatedDirective + ' ' + e.blockedURI));
window.addEventListener('error', (e) => window.__portal.errors.push(String(e.message)));
"""


def new_context(browser: Any, *, width: int = 1200, height: int = 850) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(15_000)
    context.add_init_script(WATCH_CSP)
    return context


def page_problems(page: Any) -> dict[str, list[str]]:
    """CSP violations and script errors the page has recorded since it loaded."""
    return dict(page.evaluate("window.__portal || {violations: [], errors: []}"))


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# Playwright's sync API runs an event loop in the test's thread, where Django refuses database calls: database
# work of the browser tests runs on this one worker thread (as in tests/widget).
_db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portal-db")


def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` on the database thread and return its result."""
    return _db_thread.submit(fn, *args, **kwargs).result(timeout=60)


@pytest.fixture(scope="package", autouse=True)
def _close_db_thread_connection() -> Iterator[None]:
    yield
    off_loop(connections.close_all)


BROWSER_PASSWORD = "portal browser password 51"


def browser_user(label: str) -> User:
    """A user with a password and a confirmed e-mail, who can sign in through the form."""
    from allauth.account.models import EmailAddress

    tag = uuid.uuid4().hex[:8]
    email = f"{label}-{tag}@example.test"
    user = User.objects.create_user(username=f"{label}-{tag}", email=email, password=BROWSER_PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def sign_in(page: Any, url: str, user: User) -> None:
    page.goto(url + "/accounts/login/")
    page.locator("#id_login").fill(user.email)
    page.locator("#id_password").fill(BROWSER_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda u: "/accounts/login/" not in u)
