"""Case 4 of issue #13: a client that stops reading.

tests/notifications/test_realtime_backpressure.py already shows, with channel-layer events, that such a socket is
dropped and a healthy one of its organisation gets every frame. This adds, with real sends (stored, so a cursor
can recover them): the server's memory stays bounded while the client does not read, the healthy client's
latency stays bounded, the stalled socket is closed, and on reconnect with the cursor it last read it gets every
notification it missed exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path

import httpx
import websockets
from websockets.asyncio.client import connect

from tenants.services import organization_plan_change
from tests.conftest import ALLOWED_ORIGIN, Org, make_org
from tests.notifications.realtime_support import auth_frame, run_db, signing_secret, subscribe, ws_url
from tests.servers import HeraldServer

SENDS = 3_000
BODY = "x" * 10_000  # the largest body a notification takes: ~30 MB of frames for the stalled socket in all
SEND_QUEUE = 200  # the server's per-socket queue (frames) before a stalled socket is dropped
# What the server may hold for the stalled socket: its queue, up to QUEUE_HARD_FACTOR (4) times the limit
# while it still moves, each frame ~10 KiB (its text and its wire bytes), with room for allocator slack.
# Measured: +12 to +19.5 MiB at peak in 6 runs; with the bound taken away (a queue of 100,000 frames and a
# 600 s stall allowance) +57 MiB, and the socket was never closed.
RSS_GROWTH_MAX_KIB = 32 * 1024


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _enterprise_org() -> Org:
    """An organisation on the plan whose send rate takes SENDS in a few seconds."""
    org = make_org("Slow")
    # Through the service: it forgets the keys cached (under Free) when they were issued.
    organization_plan_change(organization=org.organization, plan="enterprise")
    return org


async def test_a_client_that_stops_reading_costs_bounded_memory_delays_nobody_and_recovers_by_cursor_once(
    django_db_setup: None,
) -> None:
    acme = await run_db(_enterprise_org)
    env = {"HERALD_WS_SEND_QUEUE": str(SEND_QUEUE), "HERALD_WS_REPLAY_LIMIT": str(SENDS * 2), "LOG_LEVEL": "WARNING"}
    secret = await run_db(signing_secret, acme)
    healthy_id, stalled_id = f"healthy-{uuid.uuid4().hex[:6]}", f"stalled-{uuid.uuid4().hex[:6]}"
    with HeraldServer(env=env) as server:
        assert server.process is not None
        pid = server.process.pid
        healthy, _, _ = await subscribe(server, acme, secret, healthy_id, cursor=0)
        # Reads nothing once ready: websockets stops reading the transport after 4 queued frames.
        ws = await connect(ws_url(server, acme), origin=ALLOWED_ORIGIN, max_queue=4, max_size=2**22)  # type: ignore[arg-type]
        await ws.send(json.dumps(auth_frame(secret, stalled_id, cursor=0)))
        while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "ready":
            pass
        rss_start = _rss_kib(pid)
        rss_peak = rss_start
        arrived: dict[str, float] = {}
        posted: dict[str, float] = {}
        order: list[int] = []

        async def read_healthy() -> None:
            while len(arrived) < SENDS:
                frame = await healthy.recv(60)
                if frame["type"] == "notification":
                    arrived[frame["notification"]["id"]] = time.monotonic()
                    order.append(frame["cursor"])

        async def sample_rss() -> None:
            nonlocal rss_peak
            while True:
                rss_peak = max(rss_peak, _rss_kib(pid))
                await asyncio.sleep(0.1)

        async def keep_alive() -> None:
            while True:
                await asyncio.sleep(5)
                with contextlib.suppress(websockets.ConnectionClosed):
                    await healthy.send({"type": "ping"})

        async def sender(http: httpx.AsyncClient, count: int) -> None:
            for _ in range(count):
                started = time.monotonic()
                response = await http.post(
                    "/v1/notifications", json={"to": [healthy_id, stalled_id], "title": "t", "body": BODY}
                )
                assert response.status_code == 202, response.text
                posted[response.json()["id"]] = started

        reader = asyncio.create_task(read_healthy())
        sampler, pinger = asyncio.create_task(sample_rss()), asyncio.create_task(keep_alive())
        headers = {"Authorization": f"Bearer {acme.secret_key}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
            await asyncio.gather(*(sender(http, SENDS // 10) for _ in range(10)))
        await asyncio.wait_for(reader, 60)
        sampler.cancel()
        pinger.cancel()

        # The healthy client got every notification once, in order, without waiting on the stalled one.
        assert sorted(arrived) == sorted(posted) and order == sorted(order) and len(order) == SENDS
        latencies = sorted(arrived[i] - posted[i] for i in posted)
        p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
        assert rss_peak - rss_start <= RSS_GROWTH_MAX_KIB, f"server RSS grew {rss_start} -> {rss_peak} KiB"

        # The stalled client: what it buffered, then the connection is gone (dropped, not closed politely).
        first: list[tuple[int, str]] = []
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            async with asyncio.timeout(30):
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame["type"] == "notification":
                        first.append((frame["cursor"], frame["notification"]["id"]))
        assert ws.close_code == 1006, ws.close_code
        assert 0 < len(first) < SENDS

        # Reconnect from the last cursor it read: every other notification, each once.
        cursor = max(seq for seq, _ in first)
        again, _, replayed = await subscribe(server, acme, secret, stalled_id, cursor=cursor)
        await again.close()
        await healthy.close()
        rss_end = _rss_kib(pid)
    replayed_ids = [f["notification"]["id"] for f in replayed if f["type"] == "notification"]
    first_ids = [i for _, i in first]
    print(
        f"{SENDS} sends of {len(BODY)} B: server RSS {rss_start} -> peak {rss_peak} -> {rss_end} KiB "
        f"(+{rss_peak - rss_start} KiB at peak); healthy latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms; stalled read {len(first)} before the drop, {len(replayed_ids)} replayed"
    )
    assert p99 < 5.0, f"healthy p99 {p99:.2f} s"
    assert len(set(first_ids)) == len(first_ids) and len(set(replayed_ids)) == len(replayed_ids)
    assert not set(first_ids) & set(replayed_ids)
    assert set(first_ids) | set(replayed_ids) == set(posted)
