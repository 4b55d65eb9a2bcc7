"""PgBouncer (Debian's) in front of the test database. In transaction mode a session's `search_path` reaches
other clients, so Herald refuses it at start-up; in session mode, declared with DATABASE_POOLER=session,
Herald serves through it."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.conftest import Org
from tests.deploy.support import ServeProcess
from tests.notifications.realtime_support import api_send, run_db, signing_secret, subscribe
from tests.servers import free_port

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="Debian's pgbouncer is not installed (.ci/run installs it: apt-get install pgbouncer)"
)


class PgBouncer:
    """A pgbouncer of our own on 127.0.0.1, in `mode`, in front of the test database."""

    def __init__(self, mode: str) -> None:
        db = settings.DATABASES["default"]
        self.database = str(db["NAME"])
        self.user = str(db["USER"] or "postgres")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="herald-pgbouncer-"))
        self.dir.chmod(0o755)
        host = str(db.get("HOST") or "127.0.0.1")
        backend = f"host={host}" + (f" port={db['PORT']}" if db.get("PORT") else "")
        if db.get("PASSWORD"):
            backend += f" password={db['PASSWORD']}"
        (self.dir / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "\n".join(
                [
                    "[databases]",
                    f"{self.database} = {backend} dbname={self.database} user={self.user}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {self.dir / 'users.txt'}",
                    f"pool_mode = {mode}",
                    # Session mode: each client keeps its server connection, so the pool must hold one process's
                    # two pools (DATABASE_POOL_SIZE 10 + HERALD_INGEST_POOL_SIZE 4), or queries wait for a connection.
                    "default_pool_size = 16",
                    "max_client_conn = 200",
                    "ignore_startup_parameters = extra_float_digits",
                    "",
                ]
            )
        )
        for name in ("users.txt", "pgbouncer.ini"):
            (self.dir / name).chmod(0o644)
        command = [str(PGBOUNCER), str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            # pgbouncer will not run as root; pgserver's own user can reach its socket folder.
            user = "pgserver" if _user_exists("pgserver") else "nobody"
            command[1:1] = ["-u", user]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.process.stderr.read() if self.process.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pgbouncer did not start")

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture
def transaction_pooler() -> Iterator[PgBouncer]:
    bouncer = PgBouncer("transaction")
    yield bouncer
    bouncer.stop()


@pytest.fixture
def session_pooler() -> Iterator[PgBouncer]:
    bouncer = PgBouncer("session")
    yield bouncer
    bouncer.stop()


def test_transaction_mode_hands_one_clients_search_path_to_another(
    transaction_pooler: PgBouncer, acme: Org, globex: Org
) -> None:
    """Why Herald refuses it: a session-level SET (what django-tenants does) outlives the client's transaction."""
    leaked = False
    with (
        psycopg.connect(transaction_pooler.url, autocommit=True, prepare_threshold=None) as one,
        psycopg.connect(transaction_pooler.url, autocommit=True, prepare_threshold=None) as other,
    ):
        for _ in range(20):
            one.execute(f'SET search_path TO "{acme.schema_name}", public')
            row = other.execute("SHOW search_path").fetchone()
            assert row is not None
            if acme.schema_name in row[0]:
                leaked = True
                break
    assert leaked, "the other client never ran on the server connection that carried acme's search_path"


def test_herald_serve_refuses_a_transaction_mode_pooler_in_one_line(transaction_pooler: PgBouncer) -> None:
    server = ServeProcess(env={"DATABASE_URL": transaction_pooler.url})
    with pytest.raises(RuntimeError, match="herald server exited"):
        server.start()
    output = server.full_output()
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "connection pooler" in line]
    assert len(lines) == 1, output
    assert "DATABASE_POOLER=session" in lines[0]
    assert server.process is not None and server.process.returncode != 0


def test_migrate_schemas_refuses_a_transaction_mode_pooler(transaction_pooler: PgBouncer) -> None:
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "herald", "migrate_schemas"],
        env={**os.environ, "DATABASE_URL": transaction_pooler.url, "REDIS_URL": str(settings.REDIS_URL)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "connection pooler" in result.stderr and "Traceback" not in result.stderr


def test_a_direct_connection_is_not_taken_for_a_pooler() -> None:
    """The detection itself: the test database, reached directly, passes."""
    from herald.pooler import pooler_detected

    assert pooler_detected() is False


def test_herald_serves_through_a_session_mode_pooler_when_declared(session_pooler: PgBouncer, acme: Org) -> None:
    secret = asyncio.run(run_db(signing_secret, acme))
    env = {"DATABASE_URL": session_pooler.url, "DATABASE_POOLER": "session"}

    async def scenario() -> None:
        with ServeProcess(env=env) as server:
            client, _, _ = await subscribe(server, acme, secret, "pooled")
            await api_send(server, acme, to=["pooled"], title="through pgbouncer")
            assert (await client.recv_type("notification"))["notification"]["title"] == "through pgbouncer"
            await client.close()

    asyncio.run(scenario())
    # Without the declaration the same pooler is refused: session or transaction cannot be told from outside.
    refused = ServeProcess(env={"DATABASE_URL": session_pooler.url})
    with pytest.raises(RuntimeError, match="connection pooler"):
        refused.start()
