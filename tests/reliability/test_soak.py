"""The soak's 60-second form (infra/bench/soak.py runs the 10-minute one): 200 sockets across 20 organisations,
50 sends/s, reconnect churn, one Redis restart (a redis-server of the test's own) and one termination of the
server's send backends. Nothing accepted is lost, nothing is shown twice, no 5xx other than 503."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from infra.bench.soak import soak
from tests.reliability.redis_support import KillableRedis

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server() -> Iterator[KillableRedis]:
    redis = KillableRedis().start()
    yield redis
    redis.stop()


def test_the_soak_loses_nothing_and_shows_nothing_twice(redis_server: KillableRedis) -> None:
    seconds = float(os.environ.get("HERALD_SOAK_SECONDS", "60"))
    report = soak(seconds=seconds, sockets=200, orgs=20, rate=50, redis=redis_server, server_env={})
    print("\n".join(report.lines()))
    assert report.redis_restarted and report.terminated_backends > 0, "a fault was not injected"
    assert report.accepted >= seconds * 50 * 0.5, report.lines()
    assert report.five_hundreds == 0, report.lines()
    assert report.lost == 0, report.lines()
    assert report.duplicates == 0, report.lines()
    assert report.delivered >= report.accepted, report.lines()  # each send has one to three recipients
