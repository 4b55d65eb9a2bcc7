"""docs/quickstart.md, followed word for word: from `make run` to a notification seen in Chromium.

The test reads the doc: each ```sh block runs in bash (exports carry on to the next block), each block whose
first line names a file (`# file: x.py`, `// file: x.mjs`) is saved under that name, `python3 -m http.server`
runs in the background, and the page is opened in Chromium before the `curl`. The only changes to the
doc's text are the ports (8000 and 8080 would clash with other servers on a shared machine), and `make run`
is what it runs, `herald dev`, with a database of its own (as a fresh clone has) and the test's Redis: its
--no-serve step, then a uvicorn serving Herald on the test's port.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from django.conf import settings
from playwright.sync_api import BrowserContext

from notifications.proofs import subscriber_hash
from tests.servers import HeraldServer, free_port
from tests.servers import test_database_url as database_url  # not named test_*: pytest would collect it
from tests.widget.conftest import eventually, watch

pytestmark = pytest.mark.browser

# .ci/run installs Node.js; without it the quickstart is followed without its optional Node variant.
NODE = shutil.which("node")
ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "quickstart.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
FILE = re.compile(r"^(?:#|//) file: (\S+)\n")


def blocks(herald_port: int, page_port: int) -> list[tuple[str, str]]:
    text = DOC.read_text().replace("127.0.0.1:8000", f"127.0.0.1:{herald_port}").replace("8080", str(page_port))
    return [(lang, body) for lang, body in BLOCK.findall(text)]


class Shell:
    """One terminal session: each block runs in bash, its exports kept for the next."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env

    def run(self, script: str) -> str:
        dump = self.cwd / ".env-after"
        wrapped = f"set -euo pipefail\n{script}\nenv -0 > {shlex.quote(str(dump))}\n"
        done = subprocess.run(
            ["bash", "-c", wrapped], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, (script, done.stdout[-2000:], done.stderr[-2000:])
        self.env = dict(item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
        return done.stdout


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")  # "in a clone of the repository"
    yield tmp_path


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """DATABASE_URL of an empty database of its own, dropped after: what `make run` meets on a fresh clone.

    Not the shared test database: by the time this test runs it holds hundreds of organisations' schemas, and
    `herald dev`'s migrate visits every one (about 150 s here).
    """
    shared = database_url()
    name = f"quickstart_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(shared, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(shared)._replace(path="/" + name))
    with psycopg.connect(shared, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_for_port(port: int) -> None:
    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    eventually(answers, timeout=15)


def test_the_quickstart_ends_with_a_notification_seen_in_chromium(
    context: BrowserContext, workdir: Path, fresh_database: str
) -> None:
    herald_port, page_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database,
        "REDIS_URL": settings.REDIS_URL,
        "HERALD_DATA_DIR": str(workdir / ".herald"),
    }
    shell = Shell(workdir, env)
    steps = blocks(herald_port, page_port)
    kinds = [body.split()[0] if lang == "sh" else lang for lang, body in steps]
    assert kinds == ["make", "export", "python", "js", "python3", "python", "python3", "python3", "curl"], kinds
    server: HeraldServer | None = None
    page_server: subprocess.Popen[bytes] | None = None
    page = None
    outputs: list[str] = []
    try:
        for _lang, body in steps:
            named = FILE.match(body)
            if named:
                (workdir / named.group(1)).write_text(body)
            elif body.strip() == "make run":
                # `make run` is `herald dev`: migrate, the demo organisation, then serve.
                shell.run(f".venv/bin/herald dev --no-serve --port {herald_port}")
                server = HeraldServer(port=herald_port, env={"DATABASE_URL": fresh_database}).start()
            elif body.startswith("python3 -m http.server"):
                command = shlex.split(body.strip())
                page_server = subprocess.Popen(command, cwd=workdir, env=shell.env)  # noqa: S603
                _wait_for_port(page_port)
                page = context.new_page()
                inbox = watch(page)
                page.goto(f"http://127.0.0.1:{page_port}/")  # "Open http://127.0.0.1:8080/ in your browser"
                inbox.wait_state("live", timeout=20_000)
                assert inbox.badge() is None
            else:
                if NODE is None:  # the doc: "Node.js only for the Node variant of step 3"
                    body = "\n".join(line for line in body.splitlines() if not line.startswith("node "))
                outputs.append(shell.run(body))
                if body.startswith("export"):
                    # `export X=$(cmd)` hides a failing cmd: check that each command gave what step 2 says.
                    values = [shell.env.get(f"HERALD_{name}", "") for name in ("SECRET_KEY", "PUBLISHABLE_KEY")]
                    assert values[0].startswith("sk_live_") and values[1].startswith("pk_live_"), values
                    assert shell.env.get("HERALD_SIGNING_SECRET", "").startswith("whsk_"), outputs[-1]
                    assert server is not None and shell.env["HERALD_URL"] == server.url
        assert page is not None and server is not None
        # Step 3: Python and Node print the same hash, the one Herald expects for user-42.
        hashes = outputs[1].split()
        secret = shell.env["HERALD_SIGNING_SECRET"]
        assert hashes == [subscriber_hash(secret, "user-42")] * (2 if NODE else 1), outputs[1]
        assert secret == _demo_signing_secret(fresh_database)
        # Step 5: the curl was answered 202 with the message id, and the bell shows it at once.
        assert '"id"' in outputs[-1] and '"recipients": 1' in outputs[-1].replace('"recipients":1', '"recipients": 1')
        eventually(lambda: inbox.badge() == "1", timeout=10)
        inbox.open_panel()
        assert [item["title"] for item in inbox.items()] == ["Your first notification"]
        assert inbox.items()[0]["body"] == "Sent with curl."
        assert inbox.errors == [] and not [line for line in inbox.console if "Herald:" in line]
    finally:
        if page_server is not None:
            page_server.terminate()
            page_server.wait(timeout=10)
        if server is not None:
            server.stop()


def _demo_signing_secret(url: str) -> str:
    """The demo organisation's newest signing secret, read from the quickstart's own database."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT s.secret FROM tenants_signingsecret s JOIN tenants_organization o ON o.id = s.organization_id"
            " WHERE o.slug = 'demo' ORDER BY s.id DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    return str(row[0])
