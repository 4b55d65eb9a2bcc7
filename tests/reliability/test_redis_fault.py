"""Redis SIGKILLed while notifications flow, started again 5 s later (a redis-server this test started).

Sends keep being answered 202 and stored (keys resolve from PostgreSQL, rate limits fall back to the
process's own bucket), and every socket that stayed open ends with every notification exactly once: the
server makes each one catch up from its cursor once the channel layer is back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets

from notifications.models import Message
from tests.conftest import Org
from tests.notifications.realtime_support import Client, run_db, signing_secret, subscribe
from tests.reliability.redis_support import KillableRedis
from tests.servers import HeraldServer

SUBSCRIBERS = [f"fault-{i}" for i in range(4)]


@pytest.fixture
def redis_server() -> Iterator[KillableRedis]:
    redis = KillableRedis().start()
    yield redis
    redis.stop()


@pytest.fixture
def server_on_own_redis(redis_server: KillableRedis) -> Iterator[HeraldServer]:
    with HeraldServer(env={"REDIS_URL": redis_server.url, "LOG_LEVEL": "WARNING"}) as server:
        yield server


@pytest.fixture
def acme_secret(acme: Org) -> str:
    return signing_secret(acme)


async def _collect(client: Client, seen: list[str], closed: list[int], resume: list[tuple[int, int]]) -> None:
    """Notification ids into `seen`; into `resume`, (cursor to resume from, ids seen by then) at each cursor."""
    cursor = 0
    try:
        async for raw in client.ws:
            frame = json.loads(raw)
            if frame["type"] == "notification":
                seen.append(frame["notification"]["id"])
            if isinstance(frame.get("cursor"), int) and frame["cursor"] > cursor:
                cursor = frame["cursor"]
                resume.append((cursor, len(seen)))
    except websockets.ConnectionClosed:
        pass
    closed.append(client.ws.close_code or 1006)


async def _send_until(
    server: HeraldServer, org: Org, stop: asyncio.Event, codes: list[int], ids: list[str], seqs: dict[str, int]
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        for n in range(2_000):  # bounded; stopped by `stop` long before
            if stop.is_set():
                return
            response = await http.post(
                "/v1/notifications",
                json={"to": SUBSCRIBERS, "title": f"n{n}"},
                headers={"Authorization": f"Bearer {org.secret_key}"},
            )
            codes.append(response.status_code)
            if response.status_code == 202:
                ids.append(response.json()["id"])
                seqs[ids[-1]] = response.json()["seq"]
            await asyncio.sleep(0.05)


def _stored(org: Org, ids: list[str]) -> int:
    with org.activate():
        return Message.objects.filter(id__in=ids).count()


async def test_sends_are_accepted_and_open_sockets_get_everything_once_across_a_redis_restart(
    server_on_own_redis: HeraldServer, redis_server: KillableRedis, acme: Org, acme_secret: str
) -> None:
    server = server_on_own_redis
    clients = [(await subscribe(server, acme, acme_secret, sid))[0] for sid in SUBSCRIBERS]
    seen: list[list[str]] = [[] for _ in clients]
    closed: list[int] = []
    resume: list[list[tuple[int, int]]] = [[] for _ in clients]
    readers = [asyncio.create_task(_collect(c, seen[i], closed, resume[i])) for i, c in enumerate(clients)]
    codes: list[int] = []
    ids: list[str] = []
    seqs: dict[str, int] = {}
    stop = asyncio.Event()
    sender = asyncio.create_task(_send_until(server, acme, stop, codes, ids, seqs))
    await asyncio.sleep(1.5)
    before_kill = len(ids)
    redis_server.kill()
    await asyncio.sleep(5)
    during = len(ids) - before_kill
    redis_server.start()
    await asyncio.sleep(4)  # the channel layer reconnects; the hub's probe notices within seconds
    stop.set()
    await sender
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(len(set(s)) < len(ids) for s in seen):
        await asyncio.sleep(0.2)
    for client in clients:
        await client.close()
    await asyncio.gather(*readers)
    assert set(codes) == {202}, sorted(set(codes))
    assert during >= 10, f"only {during} sends answered while Redis was down"
    assert await run_db(_stored, acme, ids) == len(ids)
    assert closed == [1000] * len(clients), f"sockets closed by the server: {closed}"  # none was dropped
    for index, got in enumerate(seen):
        missing = set(ids) - set(got)
        assert not missing, f"{SUBSCRIBERS[index]} missed {len(missing)} of {len(ids)}; server log: {server.log.name}"
        assert len(got) == len(set(got)), f"{SUBSCRIBERS[index]} got {len(got) - len(set(got))} duplicates"
        # A client that reconnected from any cursor it was given would have missed nothing: every accepted
        # notification at or below that cursor had reached it by then (none still to come from the catch-up).
        for cursor, count in resume[index]:
            early = {i for i, seq in seqs.items() if seq <= cursor} - set(got[:count])
            assert not early, f"{SUBSCRIBERS[index]} was given cursor {cursor} before {len(early)} older items"
