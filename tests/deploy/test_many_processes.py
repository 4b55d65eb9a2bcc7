"""Scale-out: several `herald serve` processes on one PostgreSQL and one Redis (or two Redis shards)."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import redis

from tests.conftest import ALLOWED_ORIGIN, Org
from tests.deploy.support import ServeProcess
from tests.notifications.realtime_support import Client, api_send, run_db, signing_secret, subscribe
from tests.servers import PrivateRedis


async def start_all(servers: list[ServeProcess]) -> None:
    for server in servers:  # one after the other: each gets the cores while it imports Django
        await asyncio.to_thread(server.start)


async def stop_all(servers: list[ServeProcess]) -> None:
    await asyncio.gather(*(asyncio.to_thread(server.stop) for server in servers))


async def notifications(client: Client, count: int, *, before: list[dict[str, Any]] | None = None) -> list[str]:
    """The titles of the next `count` notification frames (counting replayed `before` frames first)."""
    titles = [f["notification"]["title"] for f in before or [] if f["type"] == "notification"]
    while len(titles) < count:
        titles.append((await client.recv_type("notification", timeout=10))["notification"]["title"])
    return titles


async def test_three_processes_deliver_everywhere_and_a_drained_one_hands_its_clients_over(acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    servers = [ServeProcess(env={"HERALD_DRAIN_SECONDS": "5"}) for _ in range(3)]
    await start_all(servers)
    try:
        clients: dict[str, tuple[int, Client]] = {}
        for index, server in enumerate(servers):
            for j in range(2):
                client, _, _ = await subscribe(server, acme, secret, f"p{index}-{j}")
                clients[f"p{index}-{j}"] = (index, client)
        everyone = sorted(clients)
        first = await api_send(servers[0], acme, to=everyone, title="one")
        for _, client in clients.values():
            assert await notifications(client, 1) == ["one"]

        drained = servers[2]
        assert drained.process is not None
        started = time.monotonic()
        drained.process.send_signal(signal.SIGTERM)
        moved = {sid: client for sid, (index, client) in clients.items() if index == 2}
        codes = await asyncio.gather(*(client.closed_with(timeout=15) for client in moved.values()))
        assert codes == [1012, 1012]
        assert time.monotonic() - started < 5 + 5  # within HERALD_DRAIN_SECONDS, plus slack for a loaded machine
        # Sent while the drained process's clients are away, through another process.
        for title in ("two", "three"):
            await api_send(servers[1], acme, to=everyone, title=title)
        for sid, (index, client) in clients.items():
            if index != 2:
                assert await notifications(client, 2) == ["two", "three"], sid
        # They come back on the surviving processes with their last cursor and miss nothing.
        for n, sid in enumerate(sorted(moved)):
            back, ready, replayed = await subscribe(servers[n % 2], acme, secret, sid, cursor=first["seq"])
            assert await notifications(back, 2, before=replayed) == ["two", "three"]
            await api_send(servers[0], acme, to=[sid], title=f"live-{sid}")
            assert await notifications(back, 1) == [f"live-{sid}"]
            await back.close()
        # It exits by itself once drained (128 + SIGTERM: the conventional status of a SIGTERMed process).
        assert await asyncio.to_thread(drained.process.wait, 30) in (0, 128 + signal.SIGTERM, -signal.SIGTERM)
    finally:
        await stop_all(servers)


async def test_channel_layer_sharded_over_two_redis_servers_delivers_across_processes(acme: Org, globex: Org) -> None:
    shards = [PrivateRedis(), PrivateRedis()]
    try:
        env = {"HERALD_CHANNEL_REDIS_URLS": ",".join(shard.url for shard in shards)}
        sender, receiver = ServeProcess(env=env), ServeProcess(env=env)
        await start_all([sender, receiver])
        try:
            secrets = {org.organization.slug: await run_db(signing_secret, org) for org in (acme, globex)}
            clients: dict[tuple[str, str], Client] = {}
            origins = {acme.organization.slug: ALLOWED_ORIGIN, globex.organization.slug: "http://app.globex.test"}
            for org in (acme, globex):
                for i in range(6):
                    clients[(org.organization.slug, f"s{i}")] = (
                        await subscribe(
                            receiver,
                            org,
                            secrets[org.organization.slug],
                            f"s{i}",
                            origin=origins[org.organization.slug],
                        )
                    )[0]
            # The receiving process's groups are spread over both Redis servers.
            channels = [redis.Redis.from_url(shard.url).pubsub_channels() for shard in shards]
            assert all(len(found) >= 1 for found in channels), channels
            for org in (acme, globex):
                await api_send(sender, org, to=[f"s{i}" for i in range(6)], title=f"for {org.organization.slug}")
            for (slug, _), client in clients.items():
                assert await notifications(client, 1) == [f"for {slug}"]
                assert await client.nothing_within(0.2)  # and nothing of the other organisation
        finally:
            await stop_all([sender, receiver])
    finally:
        for shard in shards:
            shard.stop()
