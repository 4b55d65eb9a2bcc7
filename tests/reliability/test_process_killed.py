"""One of two server processes SIGKILLed while notifications flow through both: no goodbye, no drain.

Its clients see their sockets drop, reconnect to the other process with their last cursor (as the widget
does) and end, like the clients that stayed on the survivor, with every notification answered 202 exactly
once. (SIGTERM with a drain: tests/deploy/test_many_processes.py.)
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.conftest import Org
from tests.notifications.realtime_support import Client, run_db, signing_secret, subscribe
from tests.servers import HeraldServer

SUBSCRIBERS = [f"k{i}" for i in range(8)]  # k0-k3 on the process that dies, k4-k7 on the survivor


@pytest.fixture
def two_servers() -> Iterator[tuple[HeraldServer, HeraldServer]]:
    with HeraldServer(env={"LOG_LEVEL": "WARNING"}) as doomed, HeraldServer(env={"LOG_LEVEL": "WARNING"}) as survivor:
        yield doomed, survivor


class Tracked:
    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.got: list[str] = []
        self.cursor = 0
        self.dropped = False

    async def read(self, client: Client) -> None:
        try:
            async for raw in client.ws:
                frame = json.loads(raw)
                if frame["type"] == "notification":
                    self.got.append(frame["notification"]["id"])
                    self.cursor = max(self.cursor, frame["cursor"])
        except websockets.ConnectionClosed:
            pass
        self.dropped = client.ws.close_code != 1000


async def _send_until(servers: list[HeraldServer], org: Org, stop: asyncio.Event, ids: list[str]) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for n in range(2_000):  # bounded; stopped by `stop` long before
            if stop.is_set():
                return
            server = servers[n % len(servers)]
            if server.process is not None and server.process.poll() is None:
                try:
                    response = await http.post(
                        server.url + "/v1/notifications",
                        json={"to": SUBSCRIBERS, "title": f"n{n}"},
                        headers={"Authorization": f"Bearer {org.secret_key}"},
                    )
                except httpx.TransportError:
                    response = None  # the process died under this request: not accepted
                if response is not None and response.status_code == 202:
                    ids.append(response.json()["id"])
            await asyncio.sleep(0.02)


async def test_clients_of_a_sigkilled_process_recover_everything_on_the_other(
    two_servers: tuple[HeraldServer, HeraldServer], acme: Org
) -> None:
    doomed, survivor = two_servers
    secret = await run_db(signing_secret, acme)
    tracked = {sid: Tracked(sid) for sid in SUBSCRIBERS}
    clients: dict[str, Client] = {}
    readers: dict[str, asyncio.Task[None]] = {}
    for n, sid in enumerate(SUBSCRIBERS):
        clients[sid], _, _ = await subscribe(doomed if n < 4 else survivor, acme, secret, sid, cursor=0)
        readers[sid] = asyncio.create_task(tracked[sid].read(clients[sid]))
    ids: list[str] = []
    stop = asyncio.Event()
    sender = asyncio.create_task(_send_until([doomed, survivor], acme, stop, ids))
    await asyncio.sleep(1.5)
    assert doomed.process is not None
    doomed.process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(doomed.process.wait, 10)
    for sid in SUBSCRIBERS[:4]:
        await asyncio.wait_for(readers[sid], 10)
        assert tracked[sid].dropped, f"{sid}'s socket was not dropped by the kill"
        # The widget's reconnect: to the other process, with the last cursor it saw.
        clients[sid], _, replayed = await subscribe(survivor, acme, secret, sid, cursor=tracked[sid].cursor)
        tracked[sid].got += [f["notification"]["id"] for f in replayed if f["type"] == "notification"]
        readers[sid] = asyncio.create_task(tracked[sid].read(clients[sid]))
    await asyncio.sleep(1.5)  # more load, now through the survivor only
    stop.set()
    await sender
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(set(ids) - set(t.got) for t in tracked.values()):
        await asyncio.sleep(0.1)
    for client in clients.values():
        await client.close()
    await asyncio.gather(*readers.values())
    assert len(ids) >= 20, f"only {len(ids)} sends accepted"
    for sid, t in tracked.items():
        missing = set(ids) - set(t.got)
        assert not missing, f"{sid} missed {len(missing)} of {len(ids)}"
        assert len(t.got) == len(set(t.got)), f"{sid} was shown {len(t.got) - len(set(t.got))} twice"
