"""One stalled socket cannot stall its organisation: it is dropped, the others get everything."""

from __future__ import annotations

import asyncio
import contextlib
import json

import websockets
from websockets.asyncio.client import connect

from notifications.groups import organization_group
from notifications.realtime import agroup_send
from tests.conftest import Org
from tests.notifications.realtime_support import Client, auth_frame, run_db, signing_secret, subscribe, ws_url
from tests.servers import HeraldServer


async def test_a_socket_that_stops_reading_is_dropped_and_the_others_get_every_frame(
    quick_server: HeraldServer, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    healthy, _, _ = await subscribe(quick_server, acme, secret, "healthy")
    # A client that reads nothing once it is ready: websockets stops reading after 4 queued frames.
    ws = await connect(ws_url(quick_server, acme), origin="http://app.acme.test", max_queue=4)  # type: ignore[arg-type]
    stalled = Client(ws)
    await stalled.send(auth_frame(secret, "stalled"))
    assert (await stalled.recv_type("ready"))["subscriber_id"] == "stalled"

    count, body = 1200, "x" * 16_000  # ~19 MB each: more than kernel buffers and the server's queue (200) hold
    received: list[int] = []

    async def read_healthy() -> None:
        while len(received) < count:
            frame = await healthy.recv(20)
            if frame["type"] == "notification":
                received.append(frame["cursor"])

    async def keep_alive() -> None:  # the quick server closes sockets idle for 2 s
        while True:
            await asyncio.sleep(0.5)
            for client in (healthy, stalled):
                with contextlib.suppress(websockets.ConnectionClosed):
                    await client.send({"type": "ping"})

    pinger = asyncio.create_task(keep_alive())
    reader = asyncio.create_task(read_healthy())
    group = organization_group(acme.organization.pk)
    for seq in range(1, count + 1):
        notification = {"id": f"00000000-0000-4000-8000-{seq:012d}", "seq": seq, "title": "t", "body": body}
        await agroup_send(group, {"type": "notification.new", "audience": "broadcast", "notification": notification})
    await asyncio.wait_for(reader, 60)
    pinger.cancel()
    assert received == list(range(1, count + 1))

    # The stalled socket was cut off: it holds what was buffered, then the connection is gone.
    got = 0
    try:
        async with asyncio.timeout(30):
            async for raw in ws:
                got += json.loads(raw)["type"] == "notification"
    except Exception:  # noqa: BLE001 - an aborted connection surfaces as ConnectionClosedError
        pass
    assert got < count
    assert ws.close_code == 1006  # aborted: no close frame
    await healthy.close()
