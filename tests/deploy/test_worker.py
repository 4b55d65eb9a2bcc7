"""`herald worker`: one round of upkeep with --once; stops on SIGTERM between rounds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests import servers


def worker(*args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": servers.test_database_url(),
        "REDIS_URL": str(servers.settings.REDIS_URL),
        "HERALD_SPARE_SCHEMAS": "0",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "herald", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_worker_once_runs_the_upkeep_and_exits() -> None:
    process = worker("--once")
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert "idempotency records older than 48 h" in output
    assert "spare schemas made: 0" in output


def test_worker_stops_on_sigterm_between_rounds() -> None:
    process = worker("--every", "3600")
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while "spare schemas made" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
        assert "spare schemas made" in line
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
