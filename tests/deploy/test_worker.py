"""`herald worker`: Procrastinate's worker; --once runs an upkeep round and what it enqueues, then exits; it
stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests import servers
from tests.billing.jobs_support import jobs
from tests.conftest import make_org


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


def test_worker_once_runs_the_upkeep_round_and_its_jobs_and_exits() -> None:
    org = make_org("Worked")
    process = worker("--once")
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert "worker: stopped; jobs succeeded" in output and "failed 0" in output, output
    # The round enqueued this organisation's retention and idempotency purge, and the same run did them.
    for task in ("herald.retention_apply", "herald.idempotency_purge"):
        ran = jobs(task, organization_id=org.organization.pk)
        assert ran and all(status == "succeeded" for status, _ in ran), (task, ran)


def test_worker_stops_on_sigterm() -> None:
    process = worker()
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while "worker: running" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
        assert "worker: running" in line  # printed once its signal handlers are in place
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert "worker: stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
