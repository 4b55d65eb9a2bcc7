"""10,000 socket connect / auth / disconnect cycles leave nothing behind (slow).

After a warm-up, 10,000 cycles in stretches: the server's resident memory, the keys of its own Redis and the
channel-layer subscriptions (on the PubSub layer each group this process joined is one Redis channel: PUBSUB
CHANNELS) all come back to within 10% of where they stood after the warm-up.

What the first version of this test read as growth (issue #13: RSS +16%, keys 9 -> 13) was two warm-ups:
- the keys were socket-presence hashes (notifications.presence): one per subscriber with a socket open at the
  reporter's last look, removed on its next look (every REPORT_EVERY s), so a snapshot taken right after the
  last disconnect counted whichever happened to be open then; plus the publishable key's cache entry (a TTL).
  Measured here once no socket is open and the reporter has looked again: no presence key is left, and every
  other key has a TTL;
- the memory was closed connections waiting for a full garbage collection: websockets' parser generator held
  each uvicorn websockets-sansio connection in a reference cycle, with its permessage-deflate zlib state
  (~40 KiB); the ASGI process's gc thresholds let hundreds pile up (385 after 2,500 cycles, measured with a
  gc.collect() in the server). The consumer now ends that generator at disconnect
  (herald.compat.sansio_release), and the stretches print each one's growth.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from notifications.presence import presence_key
from tests.conftest import Org
from tests.notifications.realtime_support import run_db, signing_secret, subscribe
from tests.reliability.redis_support import KillableRedis
from tests.servers import HeraldServer

PRESENCE_PREFIX = presence_key(0, 0).removesuffix("0:0")

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


def _presence_keys(client: redis.Redis) -> list[bytes]:
    return list(client.scan_iter(match=f"{PRESENCE_PREFIX}*"))


async def _settled(server: HeraldServer, client: redis.Redis, channels_at_most: int) -> tuple[int, int, int]:
    """The state once the server has processed the last disconnects and its presence reporter has looked again
    (bounded waits: on a busy machine either may take a few seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while loop.time() < deadline and (_state(server, client)[2] > channels_at_most or _presence_keys(client)):
        await asyncio.sleep(0.1)
    return _state(server, client)


WARM_UP = int(os.environ.get("HERALD_CONNECT_WARM_UP", "3000"))
STRETCHES = 5


async def test_ten_thousand_connect_disconnect_cycles_leave_memory_keys_and_groups_where_they_were(
    own_redis: KillableRedis, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    env = {"REDIS_URL": own_redis.url, "LOG_LEVEL": "WARNING", "HERALD_WS_CONNECT_RATE": "5000"}
    env["HERALD_WS_CONNECT_BURST"] = "10000"
    client = redis.Redis.from_url(own_redis.url)
    with HeraldServer(env=env) as server:
        await _cycles(server, acme, secret, 0, WARM_UP)
        before = await _settled(server, client, channels_at_most=10)
        rss_series = [before[0]]
        done = WARM_UP
        for stretch in range(STRETCHES):
            count = CYCLES // STRETCHES if stretch < STRETCHES - 1 else CYCLES - done + WARM_UP
            await _cycles(server, acme, secret, done, count)
            done += count
            rss_series.append((await _settled(server, client, channels_at_most=before[2]))[0])
        after = await _settled(server, client, channels_at_most=before[2])
        left = {key: client.ttl(key) for key in client.keys()}
        presence_left = _presence_keys(client)
    client.close()
    (rss0, keys0, channels0), (rss1, keys1, channels1) = before, after
    steps = [b - a for a, b in zip(rss_series, rss_series[1:], strict=False)]
    print(
        f"{WARM_UP} warm-up + {done - WARM_UP} cycles: RSS {rss0} -> {rss1} KiB ({(rss1 - rss0) / rss0:+.1%}); "
        f"RSS after each stretch {rss_series} KiB, growth per stretch {steps} KiB; keys {keys0} -> {keys1}; "
        f"groups {channels0} -> {channels1}; keys left (TTL s) {left}"
    )
    assert presence_left == [], f"presence hashes left with no socket open: {presence_left}"
    assert all(ttl > 0 for ttl in left.values()), f"keys without an expiry: {left}"
    assert rss1 <= rss0 * 1.10, f"RSS grew {rss0} -> {rss1} KiB: {rss_series}"
    # And it levels off: the last three stretches (6,000 cycles) together grow under 1%. Before the fix they grew
    # ~3% (0.7-2 MiB a stretch), while the whole run still stayed under 10%.
    assert rss_series[-1] - rss_series[-4] <= rss0 * 0.01, f"RSS still growing: {rss_series}"
    assert keys1 <= max(keys0 * 1.10, keys0 + 2), f"Redis keys {keys0} -> {keys1}"
    assert channels1 <= max(channels0 * 1.10, channels0 + 1), f"subscribed groups {channels0} -> {channels1}"
