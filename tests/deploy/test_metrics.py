"""/metrics from a real server: Prometheus text, the figures the issue lists, no organisation in a label."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Org
from tests.deploy.support import ServeProcess, scrape
from tests.notifications.realtime_support import api_send, run_db, signing_secret, subscribe


async def wait_for(server: ServeProcess, sample: str, at_least: float, timeout: float = 15) -> dict[str, float]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        samples = await asyncio.to_thread(scrape, server)
        if samples.get(sample, 0) >= at_least or asyncio.get_running_loop().time() > deadline:
            return samples
        await asyncio.sleep(0.2)


async def test_metrics_count_connections_sends_deliveries_and_batches(acme: Org, globex: Org) -> None:
    secret = await run_db(signing_secret, acme)
    server = ServeProcess()
    await asyncio.to_thread(server.start)
    try:
        before = await asyncio.to_thread(scrape, server)
        assert before.get('herald_websocket_connections{plan="free"}', 0) == 0
        clients = [(await subscribe(server, acme, secret, f"m{i}"))[0] for i in range(3)]
        samples = await asyncio.to_thread(scrape, server)
        assert samples['herald_websocket_connections{plan="free"}'] == 3
        await api_send(server, acme, to=["m0", "m1", "m2"], title="metrics")
        for client in clients:
            await client.recv_type("notification")
        samples = await wait_for(server, "herald_notifications_delivered_total", 3)
        assert samples["herald_notifications_accepted_total"] == 1
        assert samples["herald_notifications_delivered_total"] == 3
        # One event per recipient's group, each timed once when the hub hands it to its sockets.
        assert samples["herald_delivery_latency_seconds_count"] == 3
        assert samples['herald_delivery_latency_seconds_bucket{le="10.0"}'] == 3
        assert samples["herald_group_commit_batch_size_count"] >= 1
        assert samples["herald_group_commit_batch_size_sum"] >= 1
        assert "herald_channel_layer_publish_failures_total" in samples
        assert "herald_channel_layer_reconnects_total" in samples
        # The send path's pool opened on the first send; Django's on the first ORM query.
        assert samples['herald_database_pool_connections{pool="send",state="size"}'] >= 1
        assert 'herald_database_pool_connections{pool="django",state="available"}' in samples
        for client in clients:
            await client.close()
        samples = await wait_for(server, "herald_notifications_delivered_total", 3)
        deadline = asyncio.get_running_loop().time() + 10
        while samples['herald_websocket_connections{plan="free"}'] and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            samples = await asyncio.to_thread(scrape, server)
        assert samples['herald_websocket_connections{plan="free"}'] == 0
        # Labels are bounded: a plan, a pool and its state, a histogram bucket; never an organisation.
        labels = {
            pair.split("=", 1)[0]: pair.split("=", 1)[1].strip('"')
            for sample in samples
            if sample.startswith("herald_") and "{" in sample
            for pair in sample[sample.index("{") + 1 : -1].split(",")
        }
        assert set(labels) <= {"plan", "pool", "state", "le"}
        text = (await asyncio.to_thread(httpx.get, server.url + "/metrics")).text
        for org in (acme, globex):
            assert org.organization.schema_name not in text
            assert org.organization.slug not in text
    finally:
        await asyncio.to_thread(server.stop)


async def test_metrics_add_up_every_worker(acme: Org) -> None:
    """With WEB_CONCURRENCY=2 each send lands on either worker; any scrape counts them all."""
    server = ServeProcess(env={"WEB_CONCURRENCY": "2"})
    await asyncio.to_thread(server.start)
    try:
        sends = 12
        for i in range(sends):
            # A new connection each time, so the kernel may hand it to either worker.
            await api_send(server, acme, to=[f"w{i}"], title="counted")
        for _ in range(4):
            samples = await asyncio.to_thread(scrape, server)
            assert samples["herald_notifications_accepted_total"] == sends
    finally:
        await asyncio.to_thread(server.stop)
