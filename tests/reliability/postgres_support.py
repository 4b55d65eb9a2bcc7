"""A PostgreSQL of the test's own (pgserver's binaries) that a test may stop hard and start again.

It holds a copy of the test database's public schema and one organisation's schema, so a Herald server
pointed at it serves that organisation; the session's database is never touched.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from tests.servers import test_database_url

DATABASE = "herald_restart"

# pgserver's pg_dump 16 reading a PostgreSQL 15 catalog writes `ALTER TABLE ... ALTER COLUMN ... SET
# (pg_attver=...)` for every column, which no server accepts ("unrecognized parameter"): a dump by the source's
# own major version is used where the machine has one, and such lines are dropped otherwise. Debian's newer
# pg_dump wraps its dump in `\restrict <token>` / `\unrestrict <token>` (psql meta-commands that pgserver's psql
# 16.2 predates): dropped too, the dump being this test's own.
_UNLOADABLE = re.compile(
    rb"^(ALTER TABLE ONLY [^\n]* ALTER COLUMN [^\n]* SET \(pg_attver=\d+\);|\\(un)?restrict [^\n]*)\n", re.MULTILINE
)


def _pg_dump_for(url: str, fallback_bin: Path) -> Path:
    """A pg_dump of the source server's major version (Debian's layout), else pgserver's."""
    with psycopg.connect(url) as conn:
        major = conn.info.server_version // 10_000
    same = Path(f"/usr/lib/postgresql/{major}/bin/pg_dump")
    return same if same.exists() else fallback_bin / "pg_dump"


class RestartablePostgres:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="herald-pg-fault-")) / "data"
        self.server: Any = None
        self.url = ""
        self.admin_url = ""

    def start(self, *, schemas: list[str]) -> RestartablePostgres:
        import pgserver

        self.server = pgserver.get_server(self.root, cleanup_mode="delete")
        self.admin_url = self.server.get_uri()  # postgresql://postgres:@/postgres?host=<socket dir>
        socket_dir = self.admin_url.split("host=", 1)[1]
        self.url = f"postgresql://postgres@/{DATABASE}?host={socket_dir}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public")  # the dump creates it
        bin_dir = self._bin()
        dump = [str(_pg_dump_for(test_database_url(), bin_dir)), "--no-owner", "--no-privileges", "-n", "public"]
        for schema in schemas:
            dump += ["-n", schema]
        dumped = subprocess.run([*dump, test_database_url()], check=True, capture_output=True, timeout=60).stdout
        dumped = _UNLOADABLE.sub(b"", dumped)
        loaded = subprocess.run(
            [str(bin_dir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", self.url],
            input=dumped,
            capture_output=True,
            timeout=60,
        )
        if loaded.returncode != 0:
            raise RuntimeError(f"loading the dump failed: {loaded.stderr.decode(errors='replace')[-2000:]}")
        return self

    def _bin(self) -> Path:
        from pgserver._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def kill(self) -> None:
        """`pg_ctl stop -m immediate`: every backend dies at once, no checkpoint (a crash, for the clients)."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.root, user=self.server.system_user, timeout=30)

    def restart(self) -> None:
        """Start it again on the same data and socket (crash recovery runs first)."""
        self.server.ensure_postgres_running()

    def query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None
