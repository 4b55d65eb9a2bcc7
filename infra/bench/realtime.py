"""Real-time delivery: Herald against the seed article's design and a raw `websockets` ceiling.

    .venv/bin/python infra/bench/realtime.py [--targets herald,herald-core,seed,raw] [--broadcast-sockets 5000]

Starts embedded PostgreSQL and Redis in a fresh folder, migrates, creates 11
organisations, then for each target starts ONE server process on 127.0.0.1
(uvicorn --ws websockets-sansio for Herald and the seed, `websockets` for raw),
connects clients from this process (a lean asyncio WebSocket client, so the
clients cost less CPU than the servers) and prints:

(a) API-to-socket latency p50/p99 at 200 sends/s for 5 s, 1,000 subscribers
    across 10 organisations. Herald: POST /v1/notifications to one subscriber
    (a raw keep-alive HTTP/1.1 client, 16 connections; one unmeasured send per
    organisation first, so the figure is the steady state), timed from the
    request to that subscriber's socket. Seed: group_send to
    its one shared group (its design: everyone gets everything), timed at the
    intended subscriber's socket. Raw: a Redis publish routed to that socket.
(b) A broadcast to 5,000 sockets of one organisation, 5 times at 1/s: p50/p99
    of every receipt and the mean time of the last. Herald: POST
    /v1/notifications {"broadcast": true} (writes 5,000 inbox rows first), and
    `publish` (the channel-layer event alone, as the API sends it after commit).
(c) Fan-out: 40 broadcasts published back to back to the 5,000 sockets;
    deliveries per second until the last frame arrived.
(d) Server RSS per idle connection (RSS after the 5,000 connected and
    authenticated, minus before, divided by 5,000).
(e) Messages lost over (a) (at the intended socket), (b) and (c).

`herald-core` is Herald on channels-redis' core RedisChannelLayer
(HERALD_CHANNEL_LAYER=core), to compare the two layers. Every loop is
bounded; the waits for stragglers stop after a few quiet seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "platform"))

ORIGIN = "http://bench.herald.test"
MARK = b"#Q"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- a lean WebSocket client --------------------------------------------------------


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    body = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
    return head + mask + body


class Recorder:
    """Receipt times by message number, shared by all clients of a phase."""

    def __init__(self) -> None:
        self.receipts: dict[int, list[float]] = {}
        self.by_client: dict[int, dict[int, float]] = {}
        self.frames = 0
        self.last_at = 0.0

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


class WSClient(asyncio.Protocol):
    def __init__(self, index: int, request: bytes, auth: bytes | None, recorder: Recorder) -> None:
        self.index = index
        self.request = request
        self.auth = auth
        self.recorder = recorder
        self.buf = b""
        self.open = False
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.close_code: int | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(False)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if b" 101 " not in buf[:20]:
                self.ready.set_result(False)
                assert self.transport is not None
                self.transport.close()
                return
            self.open = True
            buf = buf[end + 4 :]
            if self.auth is not None:
                assert self.transport is not None
                self.transport.write(client_frame(self.auth))
            elif not self.ready.done():
                self.ready.set_result(True)
        i, n = 0, len(buf)
        rec = self.recorder
        now = time.perf_counter()
        while n - i >= 2:
            op = buf[i] & 0x0F
            ln = buf[i + 1] & 0x7F
            hl = 2
            if ln == 126:
                if n - i < 4:
                    break
                ln = int.from_bytes(buf[i + 2 : i + 4], "big")
                hl = 4
            elif ln == 127:
                if n - i < 10:
                    break
                ln = int.from_bytes(buf[i + 2 : i + 10], "big")
                hl = 10
            if n - i < hl + ln:
                break
            start, stop = i + hl, i + hl + ln
            i = stop
            if op == 1:
                at = buf.find(MARK, start, stop)
                if at >= 0:
                    number = int(buf[at + 2 : at + 10])
                    rec.frames += 1
                    rec.last_at = now
                    mine = rec.by_client.setdefault(self.index, {})
                    if number not in mine:
                        mine[number] = now
                        rec.receipts.setdefault(number, []).append(now)
                elif not self.ready.done() and buf.find(b'"ready"', start, stop) >= 0:
                    self.ready.set_result(True)
            elif op == 9 and self.transport is not None:
                self.transport.write(client_frame(buf[start:stop], 0xA))
            elif op == 8:
                self.close_code = int.from_bytes(buf[start : start + 2], "big") if ln >= 2 else 1005
                if not self.ready.done():
                    self.ready.set_result(False)
        self.buf = buf[i:]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_clients(
    port: int, specs: list[tuple[str, bytes | None]], recorder: Recorder, *, concurrency: int = 100
) -> list[WSClient]:
    """Connect one client per (path, auth frame) and wait until each is ready (authenticated)."""
    loop = asyncio.get_running_loop()
    clients: list[WSClient] = []
    gate = asyncio.Semaphore(concurrency)
    pinger = asyncio.create_task(keep_alive(clients))

    async def one(index: int, path: str, auth: bytes | None) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {ORIGIN}\r\n\r\n"
        ).encode()
        async with gate:
            for attempt in range(5):
                client = WSClient(index, request, auth, recorder)
                try:
                    await loop.create_connection(lambda: client, "127.0.0.1", port)  # noqa: B023
                    if await asyncio.wait_for(client.ready, 60):
                        clients.append(client)
                        return
                except (OSError, TimeoutError):
                    pass
                client.close()
                await asyncio.sleep(0.2 * (attempt + 1))
            raise RuntimeError(f"client {index} could not connect to {path}")

    await asyncio.gather(*(one(i, path, auth) for i, (path, auth) in enumerate(specs)))
    clients.sort(key=lambda c: c.index)
    _pingers.append(pinger)
    return clients


_pingers: list[asyncio.Task[None]] = []


PING = client_frame(b'{"type":"ping"}')


async def keep_alive(clients: list[WSClient], every: float = 30.0) -> None:
    """Ping like the widget does, so the server's idle timeout spares the benchmark's sockets."""
    while True:
        await asyncio.sleep(every)
        for client in clients:
            if client.transport is not None and not client.transport.is_closing():
                client.transport.write(PING)


async def quiet(recorder: Recorder, *, want: int, timeout: float, quiet_for: float = 3.0) -> None:
    """Wait until `want` frames arrived, or nothing arrived for `quiet_for` s, or `timeout`."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and recorder.frames < want:
        if recorder.last_at and time.perf_counter() - recorder.last_at > quiet_for:
            break
        await asyncio.sleep(0.05)


def payload(number: int) -> dict[str, Any]:
    """A notification about the size Herald sends (~210-byte frames, as measured in docs/architecture.md)."""
    return {
        "id": f"00000000-0000-4000-8000-{number:012d}",
        "seq": number,
        "title": f"#Q{number:08d}# Invoice ready",
        "body": "Your invoice for November is ready to download.",
        "action_url": "https://app.example.com/invoices/42",
        "category": "billing",
        "data": {},
        "created_at": "2026-11-27T22:00:00Z",
        "read": False,
    }


# --- targets ------------------------------------------------------------------------


@dataclass
class Results:
    name: str
    a: tuple[float, float, int] | None = None  # p50, p99 ms, lost
    a_publish: tuple[float, float, int] | None = None
    b: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)  # p50, p99, last ms, lost
    c: tuple[float, int, int] | None = None  # msgs/s, delivered, expected
    c_cpu: float | None = None  # server CPU seconds spent during (c)
    d: float | None = None  # KiB per idle connection
    connect: float | None = None  # sockets connected and authenticated (ready) per second, first connection
    reconnect: float | None = None  # ... the same sockets again (subscribers known): a reconnect after a deploy
    sends: tuple[float, float, float] | None = None  # single sends with the sockets open: req/s, p50, p99 ms
    lost: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Env:
    orgs: list[dict[str, Any]]  # slug, pk, sk, secret, id
    broadcast_org: dict[str, Any]
    redis_url: str
    database_url: str


class Target:
    name = ""
    process: subprocess.Popen[bytes]
    port: int

    def __init__(self, env: Env) -> None:
        self.env = env
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{self.name}-", suffix=".log", delete=False)  # noqa: SIM115

    def command(self) -> list[str]:
        raise NotImplementedError

    def environ(self) -> dict[str, str]:
        return {**os.environ, "REDIS_URL": self.env.redis_url, "DATABASE_URL": self.env.database_url}

    def start(self) -> None:
        from tests.servers import free_port

        self.port = free_port()
        self.process = subprocess.Popen(
            self.command(), env=self.environ(), cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT
        )
        import socket

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    time.sleep(0.5)
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start: {Path(self.log.name).read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def uvicorn(self, app: str, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(self.port),
            "--ws", "websockets-sansio", "--lifespan", "off", "--log-level", "error",
            "--backlog", "4096", "--no-access-log", *extra,
        ]  # fmt: skip

    # what differs between targets
    def a_specs(self) -> list[tuple[str, bytes | None]]:
        raise NotImplementedError

    async def a_send(self, number: int, target: int) -> None:
        raise NotImplementedError

    def b_specs(self, count: int) -> list[tuple[str, bytes | None]]:
        raise NotImplementedError

    async def publish_broadcast(self, number: int) -> None:
        raise NotImplementedError

    async def warm_broadcast_org(self) -> None:
        status, answer = await self.post(self.env.broadcast_org["sk"], {"to": ["fan-0"], "title": "warm-up"})
        if status != 202:
            raise RuntimeError(f"warm-up send answered {status}: {answer[:300]!r}")

    async def api_broadcast(self, number: int) -> None:
        raise NotImplementedError

    has_api = False

    async def a_publish(self, number: int, target: int) -> None:
        raise NotImplementedError

    async def setup(self) -> None:
        pass

    async def teardown(self) -> None:
        pass


def auth_frame(secret: str, subscriber_id: str) -> bytes:
    from notifications.proofs import subscriber_hash

    return json.dumps(
        {"type": "auth", "subscriber_id": subscriber_id, "subscriber_hash": subscriber_hash(secret, subscriber_id)}
    ).encode()


class Herald(Target):
    name = "herald"
    layer = "pubsub"
    has_api = True

    def command(self) -> list[str]:
        return self.uvicorn("herald.asgi:application")

    def environ(self) -> dict[str, str]:
        return {
            **super().environ(),
            "HERALD_CHANNEL_LAYER": self.layer,
            "LOG_LEVEL": "ERROR",
        }

    async def setup(self) -> None:
        # A raw keep-alive HTTP/1.1 client, 16 connections like a customer's backend pool (unbounded
        # concurrency would open more database connections than PostgreSQL allows). httpx cost the
        # load generator, which shares the 2 cores and the event loop with the socket clients, so
        # much CPU per request that it showed up in the latency (p50 12-22 ms against 5-11 ms).
        self.connections: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = asyncio.Queue()
        for _ in range(16):
            self.connections.put_nowait((*await asyncio.open_connection("127.0.0.1", self.port), 0.0))
        self.a_targets: list[tuple[dict[str, Any], str]] = []
        self.answered: list[float] = []  # (a): ms from request to the 202, to tell the API from the delivery
        self.broadcast_answered: list[float] = []  # (b): the same for each API broadcast

    async def post(self, key: str, body: dict[str, Any]) -> tuple[int, bytes]:
        """POST /v1/notifications on a pooled keep-alive connection: (status, body)."""
        payload_bytes = json.dumps(body).encode()
        request = (
            f"POST /v1/notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload_bytes)}\r\n\r\n"
        ).encode() + payload_bytes
        reader, writer, used = await self.connections.get()
        if writer.is_closing() or time.monotonic() - used > 3:
            # uvicorn closes keep-alive connections idle for 5 s: open a fresh one rather than race it.
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answer = await reader.readexactly(length) if length else b""
            return int(head[9:12]), answer
        finally:
            self.connections.put_nowait((reader, writer, time.monotonic()))

    async def teardown(self) -> None:
        while not self.connections.empty():
            self.connections.get_nowait()[1].close()

    async def load_subscriber_pks(self) -> None:
        from asgiref.sync import sync_to_async
        from django_tenants.utils import tenant_context

        from notifications.models import Subscriber
        from tenants.models import Organization

        def load() -> dict[tuple[int, str], int]:
            found = {}
            for org in self.env.orgs:
                with tenant_context(Organization.objects.get(pk=org["id"])):
                    for external_id, pk in Subscriber.objects.values_list("external_id", "pk"):
                        found[(org["id"], external_id)] = pk
            return found

        self.subscriber_pks = await sync_to_async(load)()

    def a_specs(self) -> list[tuple[str, bytes | None]]:
        specs = []
        for org in self.env.orgs:
            for j in range(100):
                self.a_targets.append((org, f"sub-{j}"))
                specs.append((f"/v1/ws?pk={org['pk']}", auth_frame(org["secret"], f"sub-{j}")))
        return specs

    async def a_send(self, number: int, target: int) -> None:
        org, subscriber = self.a_targets[target]
        body = {"to": [subscriber], **{k: v for k, v in payload(number).items() if k in ("title", "body", "category")}}
        started = time.perf_counter()
        status, answer = await self.post(org["sk"], body)
        self.answered.append((time.perf_counter() - started) * 1000)
        if status != 202:
            raise RuntimeError(f"send answered {status}: {answer[:300]!r}")

    async def a_publish(self, number: int, target: int) -> None:
        """The channel-layer event alone, as the API publishes it after commit."""
        from notifications.groups import subscriber_group
        from notifications.realtime import agroup_send

        org, subscriber = self.a_targets[target]
        pk = self.subscriber_pks[(org["id"], subscriber)]
        event = {"type": "notification.new", "audience": "subscribers", "notification": payload(number)}
        await agroup_send(subscriber_group(org["id"], pk), event)

    def b_specs(self, count: int) -> list[tuple[str, bytes | None]]:
        org = self.env.broadcast_org
        return [(f"/v1/ws?pk={org['pk']}", auth_frame(org["secret"], f"fan-{j}")) for j in range(count)]

    async def publish_broadcast(self, number: int) -> None:
        from notifications.groups import organization_group
        from notifications.realtime import agroup_send

        event = {"type": "notification.new", "audience": "broadcast", "notification": payload(number)}
        await agroup_send(organization_group(self.env.broadcast_org["id"]), event)

    async def api_broadcast(self, number: int) -> None:
        org = self.env.broadcast_org
        body = {"broadcast": True, **{k: v for k, v in payload(number).items() if k in ("title", "body", "category")}}
        started = time.perf_counter()
        status, answer = await self.post(org["sk"], body)
        self.broadcast_answered.append((time.perf_counter() - started) * 1000)
        if status != 202:
            raise RuntimeError(f"broadcast answered {status}: {answer[:300]!r}")


class HeraldCore(Herald):
    name = "herald-core"
    layer = "core"

    async def setup(self) -> None:
        await super().setup()
        from channels_redis.core import RedisChannelLayer

        # This process's own layer is settings' (PubSub): publish on the core layer the server uses.
        self.core = RedisChannelLayer(hosts=[self.env.redis_url], capacity=10_000, group_expiry=3_600, expiry=60)

    async def _publish(self, group: str, event: dict[str, Any]) -> None:
        await self.core.group_send(group, {**event, "group": group})

    async def a_publish(self, number: int, target: int) -> None:
        from notifications.groups import subscriber_group

        org, subscriber = self.a_targets[target]
        pk = self.subscriber_pks[(org["id"], subscriber)]
        event = {"type": "notification.new", "audience": "subscribers", "notification": payload(number)}
        await self._publish(subscriber_group(org["id"], pk), event)

    async def publish_broadcast(self, number: int) -> None:
        from notifications.groups import organization_group

        event = {"type": "notification.new", "audience": "broadcast", "notification": payload(number)}
        await self._publish(organization_group(self.env.broadcast_org["id"]), event)


class Seed(Target):
    name = "seed"

    def command(self) -> list[str]:
        return self.uvicorn("seed_asgi:application", "--app-dir", str(ROOT / "infra" / "bench"))

    async def setup(self) -> None:
        from channels_redis.core import RedisChannelLayer

        self.layer = RedisChannelLayer(hosts=[self.env.redis_url])  # the article's defaults

    def a_specs(self) -> list[tuple[str, bytes | None]]:
        return [("/ws/notifications/", None)] * 1000

    async def a_send(self, number: int, target: int) -> None:
        await self.layer.group_send("notifications", {"type": "send_notification", "message": payload(number)})

    def b_specs(self, count: int) -> list[tuple[str, bytes | None]]:
        return [("/ws/notifications/", None)] * count

    async def publish_broadcast(self, number: int) -> None:
        await self.a_send(number, 0)


class Raw(Target):
    name = "raw"

    def command(self) -> list[str]:
        return [sys.executable, str(ROOT / "infra" / "bench" / "raw_server.py"), str(self.port), self.env.redis_url]

    async def setup(self) -> None:
        import redis.asyncio as redis

        self.redis = redis.from_url(self.env.redis_url)

    async def teardown(self) -> None:
        await self.redis.aclose()

    def a_specs(self) -> list[tuple[str, bytes | None]]:
        return [(f"/?sub={i}", None) for i in range(1000)]

    async def a_send(self, number: int, target: int) -> None:
        await self.redis.publish("raw", f"{target}|" + json.dumps(payload(number)))

    def b_specs(self, count: int) -> list[tuple[str, bytes | None]]:
        return [(f"/?sub=b{i}", None) for i in range(count)]

    async def publish_broadcast(self, number: int) -> None:
        await self.redis.publish("raw", "*|" + json.dumps(payload(number)))


# --- phases ----------------------------------------------------------------------------


async def phase_a(target: Target, result: Results, rate: int, seconds: float) -> None:
    recorder = Recorder()
    clients = await open_clients(target.port, target.a_specs(), recorder)
    await asyncio.sleep(1)
    if target.has_api:
        await target.load_subscriber_pks()  # type: ignore[attr-defined]
        with quiet_collector():
            result.a_publish = await a_run(target, clients, recorder, target.a_publish, rate, seconds, 5_000_000)
        result.lost += result.a_publish[2]
        recorder.reset()
    if target.has_api:
        # Steady state: one send per organisation (key caches), then 1 s of the same load, not measured
        # (every pooled connection has met every organisation's tables).
        for index in range(0, len(clients), 100):
            await target.a_send(9_000_000 + index, index)
        with quiet_collector():
            await a_run(target, clients, recorder, target.a_send, rate, 1.0, 8_000_000)
        await asyncio.sleep(1)
        recorder.reset()
    if target.has_api:
        target.answered.clear()  # type: ignore[attr-defined]
    with quiet_collector():
        result.a = await a_run(target, clients, recorder, target.a_send, rate, seconds, 1_000_000)
    result.lost += result.a[2]
    if target.has_api:
        answered = target.answered  # type: ignore[attr-defined]
        result.notes.append(f"(a) request to 202 p50 {pct(answered, 50):.1f} ms, p99 {pct(answered, 99):.1f} ms")
    for client in clients:
        client.close()
    await asyncio.sleep(1)


class quiet_collector:  # noqa: N801 - used as a context manager
    """The load generator's garbage collector off while it measures (its full collections took 50-170 ms
    here and showed up as server latency), back on afterwards; every measured loop is bounded."""

    def __enter__(self) -> None:
        gc.collect()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        gc.enable()


async def a_run(
    target: Target,
    clients: list[WSClient],
    recorder: Recorder,
    send: Callable[[int, int], Any],
    rate: int,
    seconds: float,
    base: int,
) -> tuple[float, float, int]:
    sends = int(rate * seconds)
    sent_at: dict[int, float] = {}
    targets: dict[int, int] = {}
    tasks = []
    start = time.perf_counter()
    for k in range(sends):
        at = start + k / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        number = base + k
        targets[number] = random.randrange(len(clients))
        sent_at[number] = time.perf_counter()
        tasks.append(asyncio.create_task(send(number, targets[number])))
    await asyncio.gather(*tasks)
    await quiet(recorder, want=sends, timeout=15)
    latencies, lost = [], 0
    for number, index in targets.items():
        got = recorder.by_client.get(clients[index].index, {}).get(number)
        if got is None:
            lost += 1
        else:
            latencies.append((got - sent_at[number]) * 1000)
    return pct(latencies, 50), pct(latencies, 99), lost


LASTS: list[float] = []  # the last receipt of each broadcast of the latest `broadcasts` call, ms


async def broadcasts(
    clients: list[WSClient], recorder: Recorder, send: Callable[[int], Any], numbers: list[int], gap: float
) -> tuple[float, float, float, int]:
    sent_at = {}
    with quiet_collector():
        for number in numbers:
            sent_at[number] = time.perf_counter()
            await send(number)
            await asyncio.sleep(gap)
        await quiet(recorder, want=len(numbers) * len(clients), timeout=30)
    latencies, lasts, lost = [], [], 0
    for number in numbers:
        times = recorder.receipts.get(number, [])
        lost += len(clients) - len(times)
        latencies += [(t - sent_at[number]) * 1000 for t in times]
        if times:
            lasts.append((max(times) - sent_at[number]) * 1000)
    LASTS[:] = lasts
    return pct(latencies, 50), pct(latencies, 99), statistics.mean(lasts) if lasts else float("nan"), lost


async def phase_bcd(target: Target, result: Results, sockets: int, bursts: int) -> None:
    recorder = Recorder()
    warm = await open_clients(target.port, target.b_specs(20), recorder)  # load code paths, open DB/Redis
    for client in warm:
        client.close()
    await asyncio.sleep(2)
    before = rss_kib(target.process.pid)
    specs = target.b_specs(sockets)
    started = time.perf_counter()
    clients = await open_clients(target.port, specs, recorder)
    took = time.perf_counter() - started
    result.connect = sockets / took if took > 0 else None
    result.notes.append(f"{sockets} sockets connected and ready in {took:.1f} s")
    await asyncio.sleep(3)
    result.d = (rss_kib(target.process.pid) - before) / sockets

    if target.has_api:
        # (g) single sends while the sockets are open and idle: 32 keep-alive clients, closed loop, 5 s, each
        # send to one subscriber (a socket of its own gets it).
        from infra.bench.ingest import build_request, load, percentile

        key = target.env.broadcast_org["sk"]
        raws = [
            build_request("/v1/notifications", key, {"to": [f"fan-{i}"], "title": "Single", "body": "b"})
            for i in range(32)
        ]
        await load(target.port, raws, 8, 1.0, 202)
        count, latencies, bad = await load(target.port, raws, 32, 5.0, 202)
        result.sends = (count / 5.0, percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000)
        if bad:
            result.notes.append(f"(g) {bad} single sends not answered 202")
        await asyncio.sleep(1)  # their frames arrive before (b) resets the recorder
        # Steady state, as in (a): one unmeasured send to one subscriber of the organisation first.
        await target.warm_broadcast_org()  # type: ignore[attr-defined]
        await asyncio.sleep(1)
        recorder.reset()
        b = await broadcasts(clients, recorder, target.api_broadcast, [2_000_000 + k for k in range(5)], 1.0)
        result.b["API"] = b
        result.lost += b[3]
        answered = ", ".join(f"{ms:.0f}" for ms in target.broadcast_answered)  # type: ignore[attr-defined]
        result.notes.append(f"(b) each API broadcast's 202 after (ms): {answered}")
        result.notes.append(f"(b) each API broadcast's last receipt (ms): {', '.join(f'{ms:.0f}' for ms in LASTS)}")
    recorder.reset()
    b = await broadcasts(clients, recorder, target.publish_broadcast, [3_000_000 + k for k in range(5)], 1.0)
    result.b["publish" if target.has_api else "group_send" if target.name == "seed" else "publish"] = b
    result.lost += b[3]

    recorder.reset()
    numbers = [4_000_000 + k for k in range(bursts)]
    cpu_before = cpu_seconds(target.process.pid)
    start = time.perf_counter()
    for number in numbers:
        await target.publish_broadcast(number)
    await quiet(recorder, want=bursts * sockets, timeout=60)
    delivered = sum(len(v) for v in recorder.receipts.values())
    result.c_cpu = cpu_seconds(target.process.pid) - cpu_before
    elapsed = (recorder.last_at or time.perf_counter()) - start
    result.c = (delivered / elapsed if elapsed > 0 else 0.0, delivered, bursts * sockets)
    result.lost += bursts * sockets - delivered
    for client in clients:
        client.close()
    await asyncio.sleep(2)
    # (f) the reconnect storm after a deploy: the same clients again, their subscribers known now.
    started = time.perf_counter()
    clients = await open_clients(target.port, specs, Recorder())
    took = time.perf_counter() - started
    result.reconnect = sockets / took if took > 0 else None
    for client in clients:
        client.close()
    await asyncio.sleep(2)


# --- environment ---------------------------------------------------------------------


def prepare(broadcast_sockets: int) -> Env:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "herald.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ["HERALD_SPARE_SCHEMAS"] = "0"
    # Thousands of sockets of one key from one address: the per-process socket caps are not what is measured.
    for name in ("HERALD_WS_MAX_PER_KEY", "HERALD_WS_MAX_UNAUTHENTICATED_PER_CLIENT", "HERALD_WS_CONNECT_BURST"):
        os.environ.setdefault(name, "1000000")
    os.environ.setdefault("HERALD_WS_CONNECT_RATE", "100000")
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        os.environ["HERALD_DATA_DIR"] = tempfile.mkdtemp(prefix="hbr-", dir="/tmp")
        from herald.devservices import ensure_services

        ensure_services(quiet=True)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from tenants.models import SigningSecret
    from tenants.services import api_key_create, organization_create, organization_plan_change

    call_command("migrate_schemas", interactive=False, verbosity=0)
    suffix = os.urandom(3).hex()

    def org(slug: str) -> dict[str, Any]:
        organization = organization_create(name=slug, slug=f"{slug}-{suffix}")
        organization_plan_change(organization=organization, plan="enterprise")
        sk = api_key_create(organization=organization, kind="secret", name="bench").key
        pk = api_key_create(organization=organization, kind="publishable", name="bench", allowed_origins=[ORIGIN]).key
        secret = SigningSecret.objects.filter(organization=organization).values_list("secret", flat=True)[0]
        return {"id": organization.pk, "sk": sk, "pk": pk, "secret": secret}

    orgs = [org(f"bench{i}") for i in range(10)]
    fan = org("fanout")
    from django.db import connections

    connections.close_all()
    return Env(orgs=orgs, broadcast_org=fan, redis_url=settings.REDIS_URL, database_url=os.environ["DATABASE_URL"])


def show(results: list[Results], sockets: int, bursts: int) -> None:
    print(f"\nReal-time delivery, one server process each, 127.0.0.1, {os.cpu_count()} cores shared with the clients")
    print("(a) API-to-socket at 200 sends/s, 1,000 subscribers / 10 organisations: p50 / p99 ms, lost")
    for r in results:
        for how, figures in (("API", r.a), ("publish", r.a_publish)):
            if figures:
                how = how if r.name.startswith("herald") else "group_send" if r.name == "seed" else "publish"
                print(f"    {r.name:<12} {how:<10} {figures[0]:8.1f} {figures[1]:8.1f}   lost {figures[2]}")
    print(f"(b) broadcast to {sockets} sockets of one organisation, 5 at 1/s: p50 / p99 / mean last ms, lost")
    for r in results:
        for how, (p50, p99, last, lost) in r.b.items():
            print(f"    {r.name:<12} {how:<10} {p50:8.1f} {p99:8.1f} {last:8.1f}   lost {lost}")
    print(f"(c) fan-out, {bursts} broadcasts back to back to {sockets} sockets: deliveries/s (delivered/expected)")
    print("    target       wall-clock/s  delivered/expected  server CPU us/delivery  per server CPU-second")
    for r in results:
        if r.c:
            cpu = r.c_cpu or float("nan")
            per = r.c[1] / cpu if r.c_cpu else float("nan")
            us = cpu * 1e6 / r.c[1] if r.c[1] else float("nan")
            print(f"    {r.name:<12} {r.c[0]:12.0f}  {r.c[1]:>9}/{r.c[2]:<9} {us:22.1f}  {per:21.0f}")
    print("(d) server RSS per idle connection, KiB")
    for r in results:
        if r.d is not None:
            print(f"    {r.name:<12} {r.d:8.1f}")
    print(f"(f) connect + auth, {sockets} sockets, 100 at a time: sockets/s (ratio to raw in this run)")
    print("    target       first (subscribers created)   again (known: a reconnect after a deploy)")
    raw = next((r for r in results if r.name == "raw"), None)
    for r in results:
        if r.connect is not None:
            first = f"{r.connect:8.0f} {_ratio(r.connect, raw.connect if raw else None):>12}"
            again = f"{r.reconnect or float('nan'):8.0f} {_ratio(r.reconnect, raw.reconnect if raw else None):>12}"
            print(f"    {r.name:<12} {first}         {again}")
    print(f"(g) single sends with {sockets} idle sockets open, 32 clients: req/s, p50 / p99 ms")
    for r in results:
        if r.sends is not None:
            print(f"    {r.name:<12} {r.sends[0]:8.0f} {r.sends[1]:8.1f} {r.sends[2]:8.1f}")
    print("(e) messages lost, (a)+(b)+(c)")
    for r in results:
        print(f"    {r.name:<12} {r.lost}")
    for r in results:
        for note in r.notes:
            print(f"    note {r.name}: {note}")
    targets_show(results)


def _ratio(mine: float | None, theirs: float | None) -> str:
    return f"{mine / theirs:.2f}x raw" if mine is not None and theirs else "no raw figure"


def targets_show(results: list[Results]) -> None:
    """The issue's real-time targets, each with its figure and ratio to the raw ceiling measured in this run."""
    herald = next((r for r in results if r.name == "herald"), None)
    raw = next((r for r in results if r.name == "raw"), None)
    if herald is None:
        return

    ratio = _ratio

    def verdict(ok: bool | None) -> str:
        return "MET" if ok else "not met" if ok is not None else "not measured"

    print("Targets (real time; herald against raw in this run):")
    for how, c, rc in (
        ("first", herald.connect, raw.connect if raw else None),
        ("reconnect", herald.reconnect, raw.reconnect if raw else None),
    ):
        print(
            f"    connect + auth ({how}) >= 1,000 sockets/s and >= 0.75x raw: {c or float('nan'):.0f}/s, "
            f"{ratio(c, rc)}: " + verdict(None if c is None else c >= 1000 and (rc is None or c >= 0.75 * rc))
        )
    if herald.c and raw and raw.c:
        cpu_h = herald.c_cpu / herald.c[1] if herald.c_cpu and herald.c[1] else None
        cpu_r = raw.c_cpu / raw.c[1] if raw.c_cpu and raw.c[1] else None
        per = f"{cpu_h / cpu_r:.2f}x raw" if cpu_h and cpu_r else "n/a"
        ok = herald.c[0] >= 0.6 * raw.c[0] and (cpu_h is not None and cpu_r is not None and cpu_h <= 1.2 * cpu_r)
        print(
            f"    fan-out >= 0.6x raw deliveries/s, CPU/delivery <= 1.2x raw: {herald.c[0]:.0f}/s "
            f"{ratio(herald.c[0], raw.c[0])}, CPU/delivery {per}: {verdict(ok)}"
        )
    if herald.sends is not None:
        rate, _, p99 = herald.sends
        print(
            f"    single sends with the sockets open >= 1,500/s, p99 <= 100 ms: {rate:.0f}/s, p99 {p99:.0f} ms: "
            + verdict(rate >= 1500 and p99 <= 100)
            + " (raw has no API: no ratio)"
        )
    if herald.d is not None:
        print(f"    memory per idle socket <= 20 KiB: {herald.d:.1f} KiB: {verdict(herald.d <= 20)}")
    print(f"    lost 0: {herald.lost}: {verdict(herald.lost == 0)}")


async def run(env: Env, names: list[str], sockets: int, bursts: int, phases: list[str]) -> list[Results]:
    kinds: dict[str, type[Target]] = {"herald": Herald, "herald-core": HeraldCore, "seed": Seed, "raw": Raw}
    results = []
    for name in names:
        target = kinds[name](env)
        result = Results(name)
        target.start()
        try:
            await target.setup()
            # (d) first, on a fresh process: memory that (a)'s sockets left behind would hide it.
            if "bcd" in phases:
                print(f"... {name}: (b) (c) (d)", flush=True)
                await phase_bcd(target, result, sockets, bursts)
            if "a" in phases:
                print(f"... {name}: (a)", flush=True)
                await phase_a(target, result, rate=200, seconds=5)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other targets
            result.notes.append(f"failed: {exc!r}")
        finally:
            await target.teardown()
            target.stop()
        results.append(result)
        print(f"... {name}: done", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="herald,herald-core,seed,raw")
    parser.add_argument("--broadcast-sockets", type=int, default=5000)
    parser.add_argument("--bursts", type=int, default=40)
    parser.add_argument("--phases", default="a,bcd")
    args = parser.parse_args()
    raise_fd_limit()
    env = prepare(args.broadcast_sockets)
    results = asyncio.run(
        run(env, args.targets.split(","), args.broadcast_sockets, args.bursts, args.phases.split(","))
    )
    show(results, args.broadcast_sockets, args.bursts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
