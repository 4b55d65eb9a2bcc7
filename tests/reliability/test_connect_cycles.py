"""10,000 socket connect / auth / disconnect cycles leave nothing behind (slow).

Measured after a warm-up and again after the cycles: the server's resident memory, the keys of its own
Redis, and the channel-layer subscriptions (on the PubSub layer each group this process joined is one Redis
channel: PUBSUB CHANNELS) all come back to within 10% of where they started.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import Org
from tests.notifications.realtime_support import run_db, signing_secret, subscribe
from tests.reliability.redis_support import KillableRedis
from tests.servers import HeraldServer

pytestmark = pytest.mark.slow

CYCLES = int(os.environ.get("HERALD_CONNECT_CYCLES", "10000"))
CONCURRENCY = 20
SUBSCRIBER_IDS = 200  # cycled: the same subscribers come and go


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def own_redis() -> Iterator[KillableRedis]:
    server = KillableRedis().start()
    yield server
    server.stop()


async def _cycles(server: HeraldServer, org: Org, secret: str, start: int, count: int) -> None:
    async def worker(offset: int) -> None:
        for n in range(start + offset, start + count, CONCURRENCY):
            client, _, _ = await subscribe(server, org, secret, f"cycle-{n % SUBSCRIBER_IDS}", cursor=0)
            await client.close()

    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))


def _state(server: HeraldServer, client: redis.Redis) -> tuple[int, int, int]:
    assert server.process is not None
    return _rss_kib(server.process.pid), int(client.dbsize()), len(client.pubsub_channels())  # type: ignore[arg-type]


async def _settled(server: HeraldServer, client: redis.Redis, channels_at_most: int) -> tuple[int, int, int]:
    """The state once the server has processed the last disconnects (bounded wait)."""
    for _ in range(50):
        state = _state(server, client)
        if state[2] <= channels_at_most:
            return state
        await asyncio.sleep(0.1)
    return _state(server, client)


# Open (issue #13): measured once at 10,000 cycles on a busy machine, RSS 114,208 -> 132,900 KiB (+16%) and
# Redis keys 9 -> 13; groups 2 -> 2. Not yet known whether that is a leak or allocator/TTL-key noise.
@pytest.mark.xfail(strict=False, reason="issue #13: RSS +16% and Redis keys 9 -> 13 after 10,000 cycles, cause open")
async def test_ten_thousand_connect_disconnect_cycles_leave_memory_keys_and_groups_where_they_were(
    own_redis: KillableRedis, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    env = {"REDIS_URL": own_redis.url, "LOG_LEVEL": "WARNING", "HERALD_WS_CONNECT_RATE": "5000"}
    env["HERALD_WS_CONNECT_BURST"] = "10000"
    client = redis.Redis.from_url(own_redis.url)
    with HeraldServer(env=env) as server:
        warm_up = 1_000
        await _cycles(server, acme, secret, 0, warm_up)
        before = await _settled(server, client, channels_at_most=10)
        await _cycles(server, acme, secret, warm_up, CYCLES)
        after = await _settled(server, client, channels_at_most=before[2])
    client.close()
    (rss0, keys0, channels0), (rss1, keys1, channels1) = before, after
    print(f"{CYCLES} cycles: RSS {rss0} -> {rss1} KiB, keys {keys0} -> {keys1}, groups {channels0} -> {channels1}")
    assert rss1 <= rss0 * 1.10, f"RSS grew {rss0} -> {rss1} KiB"
    assert keys1 <= max(keys0 * 1.10, keys0 + 2), f"Redis keys {keys0} -> {keys1}"
    assert channels1 <= max(channels0 * 1.10, channels0 + 1), f"subscribed groups {channels0} -> {channels1}"
