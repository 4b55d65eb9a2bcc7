"""The soak: mixed load with faults, then an account of every accepted notification.

    .venv/bin/python infra/bench/soak.py                 # 10 minutes: 1,000 sockets, 20 organisations, 200 sends/s
    .venv/bin/python infra/bench/soak.py --seconds 60 --sockets 200 --rate 50   # the CI form (tests/reliability)

One Herald process on a Redis of its own (so it can be SIGKILLed and started again) and the benchmark's
PostgreSQL. Sockets (one subscriber each) spread over the organisations; senders post to one to three
subscribers of one organisation at `rate` per second; every second a few sockets close and reconnect with
their last cursor; at a third of the run Redis is killed and started 3 s later; at two thirds every backend of
the server's send engine is terminated. Then sending stops and every socket must end with each notification
answered 202 to its subscriber at least once, and never twice on one socket (after a reconnect in the middle
of a catch-up the replay may repeat an id the client already has: the widget drops it by id, and the count is
printed apart). Prints sends accepted, delivered, lost, duplicates, p50/p99
latency (POST to first frame, live frames only), and the server's memory at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

ORIGIN = "http://soak.test"


@dataclass
class Subscriber:
    org: int
    sid: str
    expected: set[str] = field(default_factory=set)
    received: list[str] = field(default_factory=list)
    cursor: int | None = None
    ws: Any = None
    reader: asyncio.Task[None] | None = None
    live: bool = False  # past `ready`: frames now are live (or a catch-up after a fault), not the replay
    this_connection: set[str] = field(default_factory=set)  # ids received on the current socket
    resent: int = 0  # frames of an id received on an earlier socket (replayed after a reconnect)
    twice: int = 0  # frames of an id already received on the same socket
    closed_by_server: int = 0
    close_codes: dict[int, int] = field(default_factory=dict)  # the code of each socket the server closed


@dataclass
class Org:
    secret_key: str
    publishable_key: str
    signing_secret: str
    pk: int


@dataclass
class Report:
    seconds: float
    sockets: int
    orgs: int
    accepted: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    no_answer: dict[str, int] = field(default_factory=dict)  # sends that got no HTTP answer, by exception
    skipped: int = 0  # sends not made: 256 already in flight (a stalled server slows the senders)
    post_p50_ms: float = 0.0
    post_p99_ms: float = 0.0
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    resent_after_reconnect: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rss_start_kib: int = 0
    rss_end_kib: int = 0
    rss_every_minute_kib: list[int] = field(default_factory=list)
    reconnects: int = 0
    server_closes: int = 0
    close_codes: dict[int, int] = field(default_factory=dict)
    terminated_backends: int = 0
    redis_restarted: bool = False
    five_hundreds: int = 0
    servers: int = 1
    cpu_client_s: float = 0.0  # this process (sockets, senders, bookkeeping) during the run
    cpu_server_s: list[float] = field(default_factory=list)  # each server process during the run
    cpu_postgres_s: float | None = None  # the local PostgreSQL (postmaster and backends) during the run
    wall_s: float = 0.0
    load_start: str = ""
    load_end: str = ""

    def lines(self) -> list[str]:
        return [
            f"soak: {self.seconds:.0f} s, {self.sockets} sockets across {self.orgs} organisations",
            f"sends accepted (202): {self.accepted}; refused: {dict(sorted(self.refused.items())) or 'none'}; "
            f"no answer: {dict(sorted(self.no_answer.items())) or 'none'}; not made (256 in flight): {self.skipped}",
            f"sends answered in: p50 {self.post_p50_ms:.1f} ms, p99 {self.post_p99_ms:.1f} ms",
            f"notifications delivered: {self.delivered}",
            f"lost: {self.lost}",
            f"duplicates shown (an id twice on one socket): {self.duplicates}",
            f"re-sent after a reconnect (an id from an earlier socket; the widget drops it by id): "
            f"{self.resent_after_reconnect}",
            f"latency POST -> frame (live): p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms",
            f"server memory (RSS): start {self.rss_start_kib / 1024:.1f} MiB, end {self.rss_end_kib / 1024:.1f} MiB"
            f" (each minute: {', '.join(f'{kib / 1024:.0f}' for kib in self.rss_every_minute_kib) or '-'})",
            f"reconnects: {self.reconnects}; sockets closed by the server: {self.server_closes}"
            f" (by close code: {dict(sorted(self.close_codes.items())) or 'none'})",
            f"faults: Redis restarted {self.redis_restarted}; send backends terminated {self.terminated_backends}",
            f"CPU over {self.wall_s:.0f} s (1.00 = one core busy): load client {self.cpu_client_s / self.wall_s:.2f}; "
            f"{self.servers} server process(es) "
            + ", ".join(f"{c / self.wall_s:.2f}" for c in self.cpu_server_s)
            + "; PostgreSQL "
            + (f"{self.cpu_postgres_s / self.wall_s:.2f}" if self.cpu_postgres_s is not None else "n/a")
            + f"; machine load average at start {self.load_start}, at end {self.load_end}",
        ]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def postmaster_pid() -> int | None:
    """The local PostgreSQL's postmaster (the parent of this process's backend), or None (remote, unreadable)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    connection.close()
    try:
        return int(_stat(int(row[0]))[1]) if row else None
    except (OSError, ValueError):
        return None


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid`, its children it has reaped, and its live children (PostgreSQL's backends)."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = _stat(pid)
    total = sum(int(f) for f in fields[11:15])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                child = _stat(int(entry.name))
            except OSError:
                continue
            if child[1] == str(pid):
                total += int(child[11]) + int(child[12])
    return total / tick


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def make_orgs(count: int) -> list[Org]:
    import uuid

    from tenants.models import SigningSecret
    from tenants.services import api_key_create, organization_create, organization_plan_change

    orgs = []
    for n in range(count):
        organization = organization_create(name=f"Soak {n}", slug=f"soak-{n}-{uuid.uuid4().hex[:6]}")
        organization_plan_change(organization=organization, plan="enterprise")
        secret = api_key_create(organization=organization, kind="secret", name="soak").key
        publishable = api_key_create(
            organization=organization, kind="publishable", name="soak", allowed_origins=[ORIGIN]
        ).key
        signing = SigningSecret.objects.filter(organization=organization).values_list("secret", flat=True)[0]
        orgs.append(Org(secret, publishable, signing, organization.pk))
    return orgs


def terminate_send_backends(pid: int) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            [f"herald-send-{pid}"],
        )
        row = cursor.fetchone()
    connection.close()
    return int(row[0]) if row else 0


class Soak:
    def __init__(self, servers: list[Any], orgs: list[Org], sockets: int, rate: float, seconds: float) -> None:
        # Sockets and sends spread over the server processes (all on the same database and Redis).
        self.servers = servers
        self.server = servers[0]
        self.orgs = orgs
        self.rate = rate
        self.seconds = seconds
        self.subscribers = [Subscriber(i % len(orgs), f"soak-{i}") for i in range(sockets)]
        self.by_org: dict[int, list[Subscriber]] = {}
        for sub in self.subscribers:
            self.by_org.setdefault(sub.org, []).append(sub)
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.post_latencies: list[float] = []
        self.report = Report(seconds=seconds, sockets=sockets, orgs=len(orgs), servers=len(servers))
        self.random = random.Random(13)  # noqa: S311 - load shape, not security
        self.stop = asyncio.Event()
        self.pids: list[int] = []

    # --- sockets ---------------------------------------------------------------------------------------------

    async def connect(self, sub: Subscriber) -> None:
        from websockets.asyncio.client import connect

        from notifications.proofs import subscriber_hash

        org = self.orgs[sub.org]
        for attempt in range(20):  # bounded: a refused or failed connect (a fault) is tried again
            try:
                # Each reconnect may land on another process, as behind a load balancer.
                server = self.servers[(int(sub.sid.rsplit("-", 1)[1]) + self.report.reconnects) % len(self.servers)]
                ws = await connect(f"{server.ws_url}/v1/ws?pk={org.publishable_key}", origin=ORIGIN, open_timeout=20)  # type: ignore[arg-type]
                cursor = sub.cursor if sub.cursor is not None else 0
                frame = {"type": "auth", "subscriber_id": sub.sid, "cursor": cursor}
                frame["subscriber_hash"] = subscriber_hash(org.signing_secret, sub.sid)
                await ws.send(json.dumps(frame))
                sub.ws, sub.live, sub.this_connection = ws, False, set()
                sub.reader = asyncio.get_running_loop().create_task(self.read(sub, ws))
                return
            except Exception:  # noqa: BLE001 - during a fault; try again shortly
                await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
        raise RuntimeError(f"{sub.sid} could not connect")

    async def read(self, sub: Subscriber, ws: Any) -> None:
        import websockets

        try:
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "notification":
                    message_id = frame["notification"]["id"]
                    if message_id in sub.this_connection:
                        sub.twice += 1
                    elif message_id in sub.received:
                        sub.resent += 1
                    sub.this_connection.add(message_id)
                    sub.received.append(message_id)
                    sub.cursor = max(sub.cursor or 0, int(frame["cursor"]))
                    sent = self.sent_at.get(message_id)
                    if sent is not None and sub.live:
                        self.latencies.append(time.monotonic() - sent)
                elif kind in ("ready", "reset", "unread_count") and isinstance(frame.get("cursor"), int):
                    # unread_count carries one at the end of a catch-up: the cursor to resume from, as the widget
                    # keeps it.
                    sub.cursor = max(sub.cursor or 0, frame["cursor"])
                    sub.live = sub.live or kind == "ready"
        except websockets.ConnectionClosed:
            pass
        if ws.close_code not in (1000, None) and sub.ws is ws:
            sub.closed_by_server += 1
            sub.close_codes[ws.close_code] = sub.close_codes.get(ws.close_code, 0) + 1

    async def reconnect(self, sub: Subscriber) -> None:
        ws, reader = sub.ws, sub.reader
        sub.ws = sub.reader = None
        if ws is not None:
            await ws.close()
        if reader is not None:
            await reader
        self.report.reconnects += 1
        await self.connect(sub)

    async def heartbeat(self) -> None:
        """A ping on every open socket every 25 s, as the widget sends (the server closes a socket that sent
        nothing for HERALD_WS_IDLE_TIMEOUT, 90 s, with 1001): a twenty-fifth of them each second."""
        turn = 0
        while not self.stop.is_set():
            await asyncio.sleep(1)
            for sub in self.subscribers[turn % 25 :: 25]:
                if sub.ws is not None:
                    with contextlib.suppress(Exception):  # closed meanwhile: churn reconnects it
                        await sub.ws.send('{"type":"ping"}')
            turn += 1
            if turn % 60 == 0:
                self.report.rss_every_minute_kib.append(sum(rss_kib(pid) for pid in self.pids))

    async def churn(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(1)
            for sub in self.random.sample(self.subscribers, max(1, len(self.subscribers) // 100)):
                await self.reconnect(sub)
            # Sockets the server closed (a fault, a drop) come back with their cursor, as the widget does.
            for sub in self.subscribers:
                if sub.reader is not None and sub.reader.done():
                    await self.reconnect(sub)

    # --- sends -----------------------------------------------------------------------------------------------

    async def send_one(self, clients: list[Any], n: int) -> None:
        http = clients[n % len(clients)]
        org_index = self.random.randrange(len(self.orgs))
        members = self.by_org[org_index]
        to = self.random.sample(members, min(len(members), self.random.randint(1, 3)))
        started = time.monotonic()
        try:
            response = await http.post(
                "/v1/notifications",
                json={"to": [s.sid for s in to], "title": f"soak {n}"},
                headers={"Authorization": f"Bearer {self.orgs[org_index].secret_key}"},
            )
        except Exception as error:  # noqa: BLE001 - no answer: not accepted
            name = type(error).__name__
            self.report.no_answer[name] = self.report.no_answer.get(name, 0) + 1
            return
        self.post_latencies.append(time.monotonic() - started)
        if response.status_code == 202:
            message_id = response.json()["id"]
            self.sent_at[message_id] = started
            self.report.accepted += 1
            for sub in to:
                sub.expected.add(message_id)
        else:
            self.report.refused[response.status_code] = self.report.refused.get(response.status_code, 0) + 1
            if response.status_code >= 500 and response.status_code != 503:
                self.report.five_hundreds += 1

    async def senders(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        clients = [httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) for server in self.servers]
        try:
            tasks: set[asyncio.Task[None]] = set()
            start = time.monotonic()
            n = 0
            while not self.stop.is_set():
                due = start + n / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if len(tasks) < 256:  # bounded: a stalled server slows the senders, not the soak's memory
                    task = asyncio.get_running_loop().create_task(self.send_one(clients, n))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    self.report.skipped += 1
                n += 1
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for client in clients:
                await client.aclose()

    # --- faults ----------------------------------------------------------------------------------------------

    async def faults(self, redis: Any) -> None:
        await asyncio.sleep(self.seconds / 3)
        if redis is not None:
            redis.kill()
            await asyncio.sleep(3)
            redis.start()
            self.report.redis_restarted = True
        await asyncio.sleep(max(0.0, self.seconds / 3 - 3))
        for server in self.servers:
            assert server.process is not None
            self.report.terminated_backends += await asyncio.to_thread(terminate_send_backends, server.process.pid)

    # --- the run ---------------------------------------------------------------------------------------------

    async def run(self, redis: Any, postgres: int | None = None) -> Report:
        assert self.server.process is not None
        for start in range(0, len(self.subscribers), 100):
            await asyncio.gather(*(self.connect(s) for s in self.subscribers[start : start + 100]))
        await asyncio.sleep(1)
        pids = self.pids = [server.process.pid for server in self.servers]
        self.report.rss_start_kib = sum(rss_kib(pid) for pid in pids)
        self.report.load_start = load_average()
        cpu_start, servers_start = cpu_seconds(os.getpid()), [cpu_seconds(p) for p in pids]
        postgres_start = tree_cpu_seconds(postgres) if postgres is not None else None
        wall_start = time.monotonic()
        timer = asyncio.get_running_loop().create_task(self.timer())
        await asyncio.gather(self.senders(), self.churn(), self.heartbeat(), self.faults(redis), timer)
        self.report.wall_s = time.monotonic() - wall_start
        self.report.cpu_client_s = cpu_seconds(os.getpid()) - cpu_start
        self.report.cpu_server_s = [cpu_seconds(p) - c for p, c in zip(pids, servers_start, strict=True)]
        self.report.load_end = load_average()
        if postgres is not None and postgres_start is not None:
            self.report.cpu_postgres_s = tree_cpu_seconds(postgres) - postgres_start
        # Everything accepted must arrive; sockets the server closed reconnect by cursor.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(s.expected - set(s.received) for s in self.subscribers):
            for sub in self.subscribers:
                if sub.reader is not None and sub.reader.done():
                    await self.reconnect(sub)
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)  # late duplicates, if any, show up here
        self.report.rss_end_kib = sum(rss_kib(pid) for pid in pids)
        for sub in self.subscribers:
            if sub.ws is not None:
                await sub.ws.close()
            if sub.reader is not None:
                await sub.reader
            got = set(sub.received)
            self.report.delivered += len(got & sub.expected)
            self.report.lost += len(sub.expected - got)
            self.report.duplicates += sub.twice
            self.report.resent_after_reconnect += sub.resent
            self.report.server_closes += sub.closed_by_server
            for code, count in sub.close_codes.items():
                self.report.close_codes[code] = self.report.close_codes.get(code, 0) + count
        self.report.p50_ms = percentile(self.latencies, 0.50) * 1000
        self.report.p99_ms = percentile(self.latencies, 0.99) * 1000
        self.report.post_p50_ms = percentile(self.post_latencies, 0.50) * 1000
        self.report.post_p99_ms = percentile(self.post_latencies, 0.99) * 1000
        return self.report

    async def timer(self) -> None:
        await asyncio.sleep(self.seconds)
        self.stop.set()


def soak(
    *, seconds: float, sockets: int, orgs: int, rate: float, redis: Any, server_env: dict[str, str], servers: int = 1
) -> Report:
    """Run the soak against `servers` HeraldServer processes started here (Django set up on their database)."""
    from tests.servers import HeraldServer

    organisations = make_orgs(orgs)
    env = {
        "REDIS_URL": redis.url,
        "LOG_LEVEL": "WARNING",
        "HERALD_WS_CONNECT_RATE": "2000",  # the soak measures delivery, not the connect limiter
        "HERALD_WS_CONNECT_BURST": "5000",
        **server_env,
    }
    with contextlib.ExitStack() as stack:
        started = [stack.enter_context(HeraldServer(env=env)) for _ in range(servers)]
        return asyncio.run(Soak(started, organisations, sockets, rate, seconds).run(redis, postmaster_pid()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--orgs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--servers", type=int, default=1, help="Herald processes on the same database and Redis")
    args = parser.parse_args()

    from infra.bench.common import django_on_fresh_services

    django_on_fresh_services()
    import resource

    from django.core.management import call_command

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    call_command("migrate_schemas", interactive=False, verbosity=0)
    from tests.reliability.redis_support import KillableRedis

    redis = KillableRedis().start()
    try:
        report = soak(
            seconds=args.seconds,
            sockets=args.sockets,
            orgs=args.orgs,
            rate=args.rate,
            redis=redis,
            server_env={},
            servers=args.servers,
        )
    finally:
        redis.stop()
    print("\n".join(report.lines()))
    return 0 if report.lost == 0 and report.duplicates == 0 and report.five_hundreds == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
