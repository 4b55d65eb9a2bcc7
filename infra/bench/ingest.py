"""Ingest throughput of the API: single sends, batches, a 10,000-subscriber topic.

    .venv/bin/python infra/bench/ingest.py [--seconds 5] [--workers 2]

Starts embedded PostgreSQL/Redis in a fresh folder (unless DATABASE_URL /
REDIS_URL are set: then a fresh database there), migrates, creates an
organisation on the Enterprise plan (so the rate limit does not cap the
figures) with a secret key, one subscriber and a topic of 10,000 subscribers,
then serves Herald with `uvicorn --workers 2` on 127.0.0.1 and measures:

- POST /v1/notifications to one subscriber at concurrency 1, 16 and 64:
  requests/s, p50 and p99 latency (every answer must be 202);
- POST /v1/notifications/batch (100 notifications each) at concurrency 4:
  notifications/s;
- POST /v1/notifications to the 10,000-subscriber topic: time to the 202;
- a bare ASGI floor (infra/bench/floor_asgi.py, same uvicorn settings) at concurrency 32, and beside it
  PUT /v1/subscribers/{id} and POST /v1/subscribers/{id}/tokens at concurrency 32 (req/s, ratio to the
  floor, p50/p99) and POST /v1/subscribers/bulk (1,000 new subscribers each, concurrency 4): subscribers/s;
  each with the issue's target and whether this run met it;
- isolation: a second organisation Q's single sends at concurrency 1 (p50/p99), alone and while a third, N,
  floods refusals at concurrency 64 (sends on Free answered 429, one unknown key, a new made-up key each
  request, bad widget proofs), sends within its plan's rate, or (on Enterprise) sends at concurrency 16; then
  Q's reads (GET /v1/subscribers/{id}, served by Django), alone and while N floods or paces GET
  /v1/subscribers. Each case is three pairs of runs (Q alone, then Q under N's load), its ratio the median of
  the pairs' p99 ratios, and the worst refusal flood is checked against the target (<= 2x). N's load comes
  from a second process;
  the CPU of the server, PostgreSQL and that load generator is printed beside it (2 cores in all).

The load generator is a minimal keep-alive HTTP/1.1 client on asyncio in this
process (one connection per concurrent client), so it costs the server's two
cores as little as possible. Every phase is bounded by --seconds.

    .venv/bin/python infra/bench/ingest.py --quotas [--seconds 5] [--rounds 3]

measures only what the monthly quota (billing.quotas, a per-send step) costs: an organisation on the Scale
plan (a quota of 10,000,000, far away: the common case) sends to one subscriber at concurrency 16 and 64
to two servers of the same code, one with HERALD_QUOTAS=0 and one with it on, in alternating rounds, and
prints each round, the medians and their ratio (#12: within 5%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Connection:
    """One keep-alive HTTP/1.1 connection that sends pre-built requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def build_request(path: str, key: str, body: dict | None, method: str = "POST") -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode()
    return head + payload


async def load(
    port: int,
    raw: bytes | list[bytes],
    concurrency: int,
    seconds: float,
    expect: int | tuple[int, ...],
    rotate: bool = False,
    rate: float = 0.0,
) -> tuple[int, list[float], int]:
    """Send `raw` from `concurrency` clients for `seconds` (a list: client i sends raw[i % len], or with `rotate`
    the clients walk the whole list, each request the next one), each client at most `rate` requests a second
    when given; (answers, latencies, unexpected statuses)."""
    expected = expect if isinstance(expect, tuple) else (expect,)
    walk = iter(range(10**12))
    latencies: list[float] = []
    bad = 0
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        nonlocal bad
        mine = raw[index % len(raw)] if isinstance(raw, list) else raw
        conn = await Connection.open(port)
        began = time.perf_counter()
        try:
            while time.perf_counter() < deadline:
                if rotate and isinstance(raw, list):
                    mine = raw[next(walk) % len(raw)]
                start = time.perf_counter()
                status, _ = await conn.request(mine)
                latencies.append(time.perf_counter() - start)
                if status not in expected:
                    bad += 1
                if rate:
                    await asyncio.sleep(max(0.0, began + len(latencies) / rate - time.perf_counter()))
        finally:
            conn.close()

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return len(latencies), latencies, bad


def setup() -> tuple[str, dict[str, str]]:
    """Services, migrations, an organisation with a key, a subscriber and a 10,000-subscriber topic, and the
    two organisations of the isolation phase (keys by name: "quiet" on Enterprise, "noisy" on Free)."""
    from infra.bench.common import django_on_fresh_services

    django_on_fresh_services()
    from django.core.management import call_command
    from django_tenants.utils import tenant_context

    from notifications.models import Subscriber, Topic, TopicSubscription
    from tenants.services import api_key_create, organization_create, organization_plan_change

    call_command("migrate_schemas", interactive=False, verbosity=0)
    organization = organization_create(name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}")
    organization_plan_change(organization=organization, plan="enterprise")
    key = api_key_create(organization=organization, kind="secret", name="bench").key
    with tenant_context(organization):
        Subscriber.objects.create(external_id="bench-user")
        topic = Topic.objects.create(key="everyone")
        subscribers = Subscriber.objects.bulk_create([Subscriber(external_id=f"member-{i}") for i in range(10_000)])
        TopicSubscription.objects.bulk_create([TopicSubscription(topic=topic, subscriber=s) for s in subscribers])
    others = {}
    for name, plan in (("quiet", "enterprise"), ("noisy", "free")):
        other = organization_create(name=name, slug=f"{name}-{uuid.uuid4().hex[:6]}")
        organization_plan_change(organization=other, plan=plan)
        others[name] = api_key_create(organization=other, kind="secret", name="bench").key
        if name == "noisy":  # the widget's bad-proof flood names this organisation's publishable key
            others["noisy-pk"] = api_key_create(organization=other, kind="publishable", name="bench").key
    return key, others


def serve(
    port: int, workers: int, extra: dict[str, str] | None = None, app: str = "herald.asgi:application"
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(extra or {})}
    command = [
        sys.executable, "-m", "uvicorn", app,
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--lifespan", "off", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env)  # noqa: S603
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("uvicorn did not start")


class CpuMeter:
    """CPU seconds used by the server (uvicorn and its workers) and by this run's PostgreSQL.

    The machine may be shared: wall-clock rates then understate what the
    server could do, while CPU per request is what it costs. Both are printed.
    """

    def __init__(self, server_pid: int, database_url: str) -> None:
        import psutil

        self.psutil = psutil
        self.server = psutil.Process(server_pid)
        marker = os.environ.get("HERALD_DATA_DIR") or ""
        self.postmaster = None
        if marker:
            for process in psutil.process_iter(["cmdline"]):
                cmdline = " ".join(process.info["cmdline"] or [])
                if "postgres" in cmdline and marker in cmdline and " -D " in f" {cmdline} ":
                    self.postmaster = process
                    break

    def _total(self, root: Any) -> float:
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except self.psutil.Error:
                pass
        return total

    def sample(self) -> tuple[float, float]:
        return self._total(self.server), self._total(self.postmaster) if self.postmaster else 0.0


def cpu_note(meter: CpuMeter, before: tuple[float, float], units: int, unit: str) -> str:
    after = meter.sample()
    server, database = after[0] - before[0], after[1] - before[1]
    note = f"   server CPU {server / units * 1000:.2f} ms/{unit}"
    if meter.postmaster is not None:
        note += f", PostgreSQL CPU {database / units * 1000:.2f} ms/{unit}"
    return note


UNKNOWN_KEYS = "unknown secret keys"  # noise_run builds them itself: a new well-formed key each request


def unknown_key_requests(count: int) -> list[bytes]:
    """Sends with `count` distinct unknown secret keys, each with a valid checksum (CRC32 is no secret: anyone
    can make them), so only a lookup can tell that they are unknown."""
    from tenants.keys import key_generate

    body = {"to": ["noisy-user"], "title": "Noisy"}
    return [build_request("/v1/notifications", key_generate("secret"), body) for _ in range(count)]


def bad_proof_request(publishable_key: str) -> bytes:
    """A widget read with a wrong subscriber hash (answered 401, then 429 once the address's bad-proof bucket is
    empty)."""
    return (
        "GET /v1/inbox/unread-count HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Herald-Publishable-Key: {publishable_key}\r\nX-Herald-Subscriber: noisy-user\r\n"
        f"X-Herald-Subscriber-Hash: {'0' * 64}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def noise_run(
    port: int, raw: bytes | str, concurrency: int, seconds: float, expect: int | tuple[int, ...], rate: float = 0.0
) -> tuple[int, int, float]:
    """`load` in a process of its own: (answers, unexpected statuses, CPU seconds this process used)."""
    started = time.process_time()
    if raw == UNKNOWN_KEYS:
        requests: bytes | list[bytes] = unknown_key_requests(25_000)
        started = time.process_time()
        answered, _, bad = asyncio.run(load(port, requests, concurrency, seconds, expect, rotate=True))
    else:
        assert isinstance(raw, bytes)
        answered, _, bad = asyncio.run(load(port, raw, concurrency, seconds, expect, rate=rate))
    return answered, bad, time.process_time() - started


async def isolation(
    port: int, key: str, others: dict[str, str], seconds: float, meter: CpuMeter, pairs: int = 3
) -> None:
    """Another organisation Q's sends and reads at concurrency 1, alone and while a noisy one, N, hammers the API.

    Each case is `pairs` pairs of runs, Q alone then Q under N's load, and its ratio the median of the pairs'
    p99 ratios: one p99 of a few thousand requests on a shared machine moves by a third from run to run. The
    noisy organisation's load runs in a second process: on this process's loop its 64 clients' answers would
    queue in front of Q's, and Q's latency would be partly the load generator's.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    quiet = build_request("/v1/notifications", others["quiet"], {"to": ["quiet-user"], "title": "Quiet"})
    quiet_read = build_request("/v1/subscribers/quiet-user", others["quiet"], None, "GET")
    noisy_free = build_request("/v1/notifications", others["noisy"], {"to": ["noisy-user"], "title": "Noisy"})
    noisy_free_list = build_request("/v1/subscribers", others["noisy"], None, "GET")
    noisy_paid = build_request("/v1/notifications", key, {"to": ["bench-user"], "title": "Noisy"})
    noisy_unknown_one = unknown_key_requests(1)[0]
    noisy_bad_proof = bad_proof_request(others["noisy-pk"])
    await load(port, quiet, 1, 1.0, 202)
    await load(port, quiet_read, 1, 1.0, 200)
    print(
        f"Isolation: organisation Q at concurrency 1 while organisation N hammers (Q p50 / p99 under N's load; "
        f"ratio: median of {pairs} pairs of {seconds:g} s runs, Q alone then Q under N's load):"
    )
    send, read = ("sends", quiet, 202), ("reads", quiet_read, 200)
    # (label, Q's unit, N's request, N's clients, N's expected statuses, N's rate per client or 0 for flat out).
    # N's refused floods are what the target is about; its requests within its plan (45/s of Free's 50/s, all
    # served) are the reference for what a flood's accepted share costs; Enterprise sends are served load.
    cases: list[tuple[str, tuple[str, bytes, int], bytes | str, int, int | tuple[int, ...], float]] = [
        ("N sends on Free (50/s) at c64, ~all 429", send, noisy_free, 64, 429, 0.0),
        ("N sends at 45/s, within Free's 50/s, all 202", send, noisy_free, 1, 202, 45.0),
        ("one unknown secret key at c64, all 401", send, noisy_unknown_one, 64, 401, 0.0),
        ("a new unknown secret key each at c64, all 401", send, UNKNOWN_KEYS, 64, 401, 0.0),
        ("N's widget with bad proofs at c64, 401/429", send, noisy_bad_proof, 64, (401, 429), 0.0),
        ("N sends on Enterprise at c16, all 202", send, noisy_paid, 16, 202, 0.0),
        ("N lists on Free (50/s) at c64, ~all 429", read, noisy_free_list, 64, 429, 0.0),
        ("N lists at 45/s, within Free's 50/s, all 200", read, noisy_free_list, 1, 200, 45.0),
    ]
    loop = asyncio.get_running_loop()
    refused_ratios: dict[str, float] = {}
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        await loop.run_in_executor(pool, time.sleep, 0)  # the process started before anything is timed
        for label, (unit, q_raw, q_expect), raw, concurrency, expect, rate in cases:
            alone: list[float] = []
            loaded: list[float] = []
            ratios: list[float] = []
            q_bad = answered = other = 0
            generator_cpu = 0.0
            before = meter.sample()
            for _ in range(pairs):
                _, latencies, bad = await load(port, q_raw, 1, seconds, q_expect)
                alone += latencies
                alone_p99 = percentile(latencies, 99)
                noise = loop.run_in_executor(pool, noise_run, port, raw, concurrency, seconds + 1.0, expect, rate)
                await asyncio.sleep(0.5)
                _, latencies, bad_loaded = await load(port, q_raw, 1, seconds, q_expect)
                loaded += latencies
                q_bad += bad + bad_loaded
                ratios.append(percentile(latencies, 99) / alone_p99)
                n_answered, n_other, n_cpu = await noise
                answered, other, generator_cpu = answered + n_answered, other + n_other, generator_cpu + n_cpu
            after = meter.sample()
            wall = pairs * (2 * seconds + 1.0)
            ratio = statistics.median(ratios)
            if expect != 202 and rate == 0.0:  # N's requests all refused, flat out
                refused_ratios[f"Q {unit}, {label}"] = ratio
            noise_seconds = pairs * (seconds + 1.0)
            print(
                f"  Q {unit}, {label:<50} p50 {percentile(loaded, 50) * 1000:6.1f} ms   "
                f"p99 {percentile(loaded, 99) * 1000:6.1f} ms   ({len(loaded)} {unit}"
                f"{f', {q_bad} NOT {q_expect}' if q_bad else ''})  = {ratio:.1f}x alone "
                f"(pairs {', '.join(f'{r:.1f}' for r in ratios)}; p99 alone {percentile(alone, 99) * 1000:.1f} ms);"
                f"  N: {answered / noise_seconds:.0f} answers/s, {answered - other} of them {expect}, "
                f"N's load generator {generator_cpu / noise_seconds:.2f} cores;"
                f"  server {(after[0] - before[0]) / wall:.2f} cores, PostgreSQL {(after[1] - before[1]) / wall:.2f}"
            )
    worst = max(refused_ratios, key=refused_ratios.__getitem__)
    print(
        f"  worst refusal flood: {refused_ratios[worst]:.1f}x Q's p99 alone ({worst})"
        + _target("refused requests cost another organisation <= 2x its p99 alone", refused_ratios[worst] <= 2.0)
    )


async def floor(workers: int, seconds: float) -> float:
    """Requests/s of a bare ASGI app (infra/bench/floor_asgi.py) on the same uvicorn settings, at concurrency 32."""
    port = free_port()
    process = serve(port, workers, app="infra.bench.floor_asgi:app")
    try:
        raw = build_request("/floor", "none", None, "GET")
        await load(port, raw, 4, 0.5, 200)
        count, _, _ = await load(port, raw, 32, seconds, 200)
        return count / seconds
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def _target(label: str, ok: bool) -> str:
    return f"   target {label}: {'MET' if ok else 'not met'}"


async def subscribers(port: int, key: str, seconds: float, meter: CpuMeter, floor_rps: float) -> None:
    """The subscriber routes the front serves on the event loop: upsert and token issue at 32 clients, bulk import."""
    print(f"Bare ASGI floor (same uvicorn settings, concurrency 32): {floor_rps:8.0f} req/s")
    # Each client its own subscriber (as an import or a sign-up flow): 32 clients on ONE row would measure that
    # row's lock, every update waiting for the previous one's commit.
    upsert = [
        build_request(f"/v1/subscribers/member-{i}", key, {"name": "Bench", "data": {"n": i}}, "PUT") for i in range(32)
    ]
    token = build_request("/v1/subscribers/bench-user/tokens", key, {"expires_in": 600})
    routes: list[tuple[str, bytes | list[bytes]]] = [
        ("PUT /v1/subscribers/{id}", upsert),
        ("POST /v1/subscribers/{id}/tokens", token),
    ]
    for label, raw in routes:
        await load(port, raw, 4, 0.5, 200)
        before = meter.sample()
        count, latencies, bad = await load(port, raw, 32, seconds, 200)
        rps, p99 = count / seconds, percentile(latencies, 99) * 1000
        print(
            f"{label} at concurrency 32: {rps:8.0f} req/s ({rps / floor_rps:.2f}x floor)   "
            f"p50 {percentile(latencies, 50) * 1000:6.1f} ms   p99 {p99:6.1f} ms"
            + cpu_note(meter, before, max(count, 1), "request")
            + (f"   NOT 200: {bad}" if bad else "")
            + _target(">= 1,500 req/s, p99 <= 50 ms", rps >= 1500 and p99 <= 50)
        )
    # Bulk import: every request a fresh 1,000 ids (creates), so the figure is inserts, not no-op updates.
    counter = iter(range(10**9))

    async def importer() -> tuple[int, int]:
        conn = await Connection.open(port)
        done = bad = 0
        try:
            while time.perf_counter() < deadline:
                batch = next(counter)
                body = {"subscribers": [{"id": f"imp-{batch}-{i}", "name": f"User {i}"} for i in range(1000)]}
                status, _ = await conn.request(build_request("/v1/subscribers/bulk", key, body))
                done += 1000 if status == 200 else 0
                bad += status != 200
        finally:
            conn.close()
        return done, bad

    before = meter.sample()
    deadline = time.perf_counter() + seconds
    outcomes = await asyncio.gather(*(importer() for _ in range(4)))
    imported, bad = sum(o[0] for o in outcomes), sum(o[1] for o in outcomes)
    per_second = imported / seconds
    print(
        f"POST /v1/subscribers/bulk (1,000 new each, concurrency 4): {per_second:8.0f} subscribers/s"
        + cpu_note(meter, before, max(imported, 1), "subscriber")
        + (f"   NOT 200: {bad}" if bad else "")
        + _target(">= 20,000 subscribers/s", per_second >= 20_000)
    )


async def run(port: int, key: str, seconds: float, meter: CpuMeter) -> None:
    single = build_request("/v1/notifications", key, {"to": ["bench-user"], "title": "Bench", "body": "hello"})
    await load(port, single, 4, 1.0, 202)  # warm up: every worker's connections, caches, statements
    print("POST /v1/notifications to one subscriber (uvicorn, 2 workers):")
    for concurrency in (1, 16, 64):
        before = meter.sample()
        count, latencies, bad = await load(port, single, concurrency, seconds, 202)
        print(
            f"  concurrency {concurrency:>2}: {count / seconds:8.0f} req/s   "
            f"p50 {percentile(latencies, 50) * 1000:6.1f} ms   p99 {percentile(latencies, 99) * 1000:6.1f} ms"
            + cpu_note(meter, before, max(count, 1), "request")
            + (f"   NOT 202: {bad}" if bad else "")
        )
    batch_body = {"notifications": [{"to": [f"member-{i}"], "title": "Batch", "body": "b"} for i in range(100)]}
    batch = build_request("/v1/notifications/batch", key, batch_body)
    before = meter.sample()
    count, latencies, bad = await load(port, batch, 4, seconds, 200)
    print(
        f"POST /v1/notifications/batch (100 each, concurrency 4): {count * 100 / seconds:8.0f} notifications/s   "
        f"p50 {percentile(latencies, 50) * 1000:6.1f} ms per batch"
        + cpu_note(meter, before, max(count * 100, 1), "notification")
        + (f"   NOT 200: {bad}" if bad else "")
        + _target(">= 20,000 notifications/s", count * 100 / seconds >= 20_000)
    )
    topic = build_request("/v1/notifications", key, {"topic": "everyone", "title": "To all 10,000"})
    timings = []
    for _ in range(3):
        conn = await Connection.open(port)
        start = time.perf_counter()
        status, body = await conn.request(topic)
        timings.append(time.perf_counter() - start)
        conn.close()
        assert status == 202 and json.loads(body)["recipients"] == 10_000, (status, body[:200])
    print(
        f"POST /v1/notifications to a 10,000-subscriber topic: 202 in {statistics.median(timings) * 1000:.0f} ms "
        f"(median of 3; {', '.join(f'{t * 1000:.0f}' for t in timings)} ms)"
    )


def metered_key() -> str:
    """A secret key of an organisation on the Scale plan (its quota far away), with one subscriber."""
    from django_tenants.utils import tenant_context

    from notifications.models import Subscriber
    from tenants.services import api_key_create, organization_create, organization_plan_change

    organization = organization_create(name="Metered", slug=f"metered-{uuid.uuid4().hex[:6]}")
    organization_plan_change(organization=organization, plan="scale")
    with tenant_context(organization):
        Subscriber.objects.create(external_id="bench-user")
    return api_key_create(organization=organization, kind="secret", name="bench").key


async def quotas_compare(
    ports: dict[str, int], meters: dict[str, CpuMeter], key: str, seconds: float, rounds: int
) -> None:
    single = build_request("/v1/notifications", key, {"to": ["bench-user"], "title": "Bench", "body": "hello"})
    for port in ports.values():
        await load(port, single, 4, 1.0, 202)  # warm up
    print(f"POST /v1/notifications, Scale plan, quotas off vs on ({rounds} alternating rounds of {seconds:.0f} s):")
    for concurrency in (16, 64):
        rates: dict[str, list[float]] = {name: [] for name in ports}
        costs: dict[str, list[float]] = {name: [] for name in ports}
        for round_ in range(rounds):
            # Each goes first in every other round: the second of a pair runs on the first one's leftovers.
            order = list(ports.items()) if round_ % 2 == 0 else list(reversed(ports.items()))
            for name, port in order:
                before = meters[name].sample()[0]
                count, latencies, bad = await load(port, single, concurrency, seconds, 202)
                cpu_ms = (meters[name].sample()[0] - before) / max(count, 1) * 1000
                rates[name].append(count / seconds)
                costs[name].append(cpu_ms)
                print(
                    f"  c{concurrency:<2} quotas {name:<3}: {count / seconds:7.0f} req/s   "
                    f"p50 {percentile(latencies, 50) * 1000:6.1f} ms   p99 {percentile(latencies, 99) * 1000:6.1f} ms"
                    f"   server CPU {cpu_ms:.3f} ms/request" + (f"   NOT 202: {bad}" if bad else "")
                )
        off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
        cost_off, cost_on = statistics.median(costs["off"]), statistics.median(costs["on"])
        print(
            f"  c{concurrency:<2} median: off {off:7.0f} req/s, on {on:7.0f} req/s, on/off = {on / off:.3f};  "
            f"server CPU off {cost_off:.3f} ms/request, on {cost_on:.3f}, on/off = {cost_on / cost_off:.3f}"
        )


def quota_check_cost(key: str, checks: int = 50_000) -> None:
    """The quota step's own cost per send, in this process: `check` far from the line (the common case)."""
    from billing.quotas import QuotaStep
    from notifications.sending import NotificationDraft, SendCheck
    from tenants.resolve import api_key_resolve

    resolved = api_key_resolve(key)
    assert resolved is not None
    send = SendCheck(
        organization_id=resolved.organization_id,
        schema_name=resolved.schema_name,
        api_key_id=resolved.api_key_id,
        drafts=(NotificationDraft(title="x", to=["bench-user"]),),
        batch=False,
        plan=resolved.plan,
    )

    async def checks_run() -> float:
        step = QuotaStep()
        await step.check(send)  # seeds the counter (rows, Redis)
        started = time.perf_counter()
        for _ in range(checks):
            await step.check(send)
        return time.perf_counter() - started

    elapsed = asyncio.run(checks_run())
    print(f"QuotaStep.check in-process: {elapsed / checks * 1e6:.1f} µs per send ({checks} checks, Redis synced 1/s)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quotas", action="store_true", help="only compare sends with quotas off and on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-isolation", action="store_true", help="leave out the (long) isolation phase")
    parser.add_argument("--isolation-only", action="store_true", help="only the isolation phase")
    args = parser.parse_args()
    if args.quotas:
        from infra.bench.common import django_on_fresh_services

        django_on_fresh_services()
        from django.core.management import call_command

        call_command("migrate_schemas", interactive=False, verbosity=0)
        key = metered_key()
        ports = {"off": free_port(), "on": free_port()}
        servers = [
            serve(ports["off"], args.workers, {"HERALD_QUOTAS": "0"}),
            serve(ports["on"], args.workers, {"HERALD_QUOTAS": "1"}),
        ]
        try:
            os.system("uptime")  # noqa: S605, S607 - how busy the machine was
            database_url = os.environ["DATABASE_URL"]
            meters = {name: CpuMeter(server.pid, database_url) for name, server in zip(ports, servers, strict=True)}
            asyncio.run(quotas_compare(ports, meters, key, args.seconds, args.rounds))
            quota_check_cost(key)
        finally:
            for server in servers:
                server.send_signal(signal.SIGTERM)
            for server in servers:
                try:
                    server.wait(15)
                except subprocess.TimeoutExpired:
                    server.kill()
        return 0
    key, others = setup()
    port = free_port()
    server = serve(port, args.workers)
    try:
        os.system("uptime")  # noqa: S605, S607 - how busy the machine was
        meter = CpuMeter(server.pid, os.environ["DATABASE_URL"])
        if not args.isolation_only:
            floor_rps = asyncio.run(floor(args.workers, args.seconds))
            asyncio.run(run(port, key, args.seconds, meter))
            asyncio.run(subscribers(port, key, args.seconds, meter, floor_rps))
        if not args.skip_isolation:
            asyncio.run(isolation(port, key, others, args.seconds, meter))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
