"""`herald dev` with embedded services: shared by other herald commands, gone after Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.servers import free_port

HERALD = str(Path(sys.executable).with_name("herald"))


def _processes_using(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if str(folder) in " ".join(process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def embedded_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # A short path: Unix socket paths are limited to ~107 bytes.
    folder = Path(f"/tmp/hd-{os.getpid()}-{free_port()}")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "HERALD_ENV")}
    env["HERALD_DATA_DIR"] = str(folder)
    yield env
    for process in _processes_using(folder):
        process.kill()
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def test_dev_serves_is_shared_and_leaves_nothing_after_ctrl_c(embedded_env: dict[str, str]) -> None:
    folder = Path(embedded_env["HERALD_DATA_DIR"])
    port = free_port()
    dev = subprocess.Popen(
        [HERALD, "dev", "--port", str(port)],
        env=embedded_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's job
    )
    try:
        deadline = time.monotonic() + 90
        ready = None
        while time.monotonic() < deadline and dev.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, "herald dev did not become ready"
        assert _processes_using(folder), "embedded servers should run under the data folder"

        # A second herald command from the same checkout acts on the running demo's database.
        shell = subprocess.run(
            [
                HERALD,
                "shell",
                "-c",
                "from tenants.models import ApiKey; "
                "key = ApiKey.objects.get(organization__slug='demo', kind='publishable', revoked_at=None); "
                "print(key.organization.slug, ' '.join(key.allowed_origins))",
            ],
            env=embedded_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        # The worker `herald dev` started beside the server registers itself once it runs (bounded wait).
        waited = subprocess.run(
            [
                HERALD,
                "shell",
                "-c",
                "import time\n"
                "from django.db import connection\n"
                "deadline = time.monotonic() + 60\n"
                "while time.monotonic() < deadline:\n"
                "    with connection.cursor() as c:\n"
                "        c.execute('SELECT count(*) FROM procrastinate_workers')\n"
                "        if c.fetchone()[0]: break\n"
                "    time.sleep(0.2)\n"
                "else:\n"
                "    raise SystemExit('no worker registered within 60 s')\n"
                "print('workers registered')",
            ],
            env=embedded_env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert "workers registered" in waited.stdout, waited.stderr
        slug, *origins = shell.stdout.strip().splitlines()[-1].split()
        assert slug == "demo", shell.stderr
        assert f"http://127.0.0.1:{port}" in origins, shell.stdout  # the demo page on this port may use the demo key
        # ...and leaving it did not stop the servers the dev server uses.
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    finally:
        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        output = dev.communicate(timeout=60)[0]
    assert "curl -fsS" in output  # it printed a ready-to-paste command
    assert "worker: running Herald's background jobs" in output, output  # `make run` runs the jobs too
    deadline = time.monotonic() + 15
    while _processes_using(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_using(folder) == [], "postgres or redis outlived herald dev"


def test_servers_left_by_a_dead_test_run_are_reaped() -> None:
    from herald.devservices import EmbeddedRedis, reap_stale_test_services

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    root = Path(f"/tmp/hr-{os.getpid()}-{free_port()}")
    orphan = EmbeddedRedis(root / f"test-{dead.pid}" / "redis")
    orphan.start()
    pid = orphan._running_pid()
    assert pid is not None and psutil.pid_exists(pid)
    try:
        assert reap_stale_test_services(root) == 1
        psutil.Process(pid).wait(10)
        assert not psutil.pid_exists(pid)
        assert not (root / f"test-{dead.pid}").exists()
    finally:
        if psutil.pid_exists(pid):
            psutil.Process(pid).kill()
        subprocess.run(["rm", "-rf", str(root)], check=False)
