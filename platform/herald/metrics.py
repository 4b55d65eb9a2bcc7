"""Prometheus metrics: every definition here, each call site one line.

On the hot paths only counters move (an increment, an observation); database pool use is sampled by a
background thread every few seconds, never per request. Labels are bounded: the plan, the pool name, never
an organisation id. With several workers (`herald serve` with WEB_CONCURRENCY > 1) prometheus-client's
multiprocess mode is on: `PROMETHEUS_MULTIPROC_DIR` names a folder every worker writes to, and /metrics
(any worker) adds them up.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

websocket_connections = Gauge(
    "herald_websocket_connections",
    "WebSocket connections open now (accepted by the key middleware), by plan",
    ["plan"],
    multiprocess_mode="livesum",
)
notifications_accepted = Counter(
    "herald_notifications_accepted", "Notifications committed and acknowledged (202) by the send path"
)
notifications_delivered = Counter(
    "herald_notifications_delivered", "Notification frames handed to local sockets by the hub (one per socket)"
)
delivery_latency = Histogram(
    "herald_delivery_latency_seconds",
    "From a message's creation in its send transaction to its frame reaching this process's sockets",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
channel_layer_publish_failures = Counter(
    "herald_channel_layer_publish_failures", "Events that could not be published to the channel layer"
)
channel_layer_reconnects = Counter(
    "herald_channel_layer_reconnects", "Times the hub's channel-layer receive failed and it resumed"
)
database_pool_connections = Gauge(
    "herald_database_pool_connections",
    "Database pool connections: size (open), available (idle) and waiting (requests queued), by pool",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
group_commit_batch_size = Histogram(
    "herald_group_commit_batch_size",
    "Sends coalesced into one send transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)


def plan_label(plan: str) -> str:
    """`plan` as a label value: a known plan's code, else `other` (labels stay bounded)."""
    from billing.plans import PLANS

    return plan if plan in PLANS else "other"


class SocketOpen:
    """`with socket_open(plan):` around a socket's life keeps herald_websocket_connections current."""

    __slots__ = ("gauge",)

    def __init__(self, plan: str) -> None:
        self.gauge = websocket_connections.labels(plan_label(plan))

    def __enter__(self) -> None:
        self.gauge.inc()

    def __exit__(self, *exc: object) -> None:
        self.gauge.dec()


socket_open = SocketOpen


def notifications_delivered_to(count: int, created_at: Any) -> None:
    """One notification event handed to `count` local sockets; its latency from `created_at` (ISO 8601)."""
    if count:
        notifications_delivered.inc(count)
    if isinstance(created_at, str):
        try:
            delivery_latency.observe(max(0.0, time.time() - datetime.fromisoformat(created_at).timestamp()))
        except ValueError:
            pass


def group_commit(batch: int, *, accepted: int) -> None:
    """One send transaction committed `batch` coalesced sends, `accepted` of them notifications."""
    group_commit_batch_size.observe(batch)
    if accepted:
        notifications_accepted.inc(accepted)


# --- database pools, sampled ------------------------------------------------------------------

_pools: dict[str, Callable[[], Any]] = {}
_sampler: threading.Thread | None = None
_sampler_lock = threading.Lock()
SAMPLE_EVERY = 5.0


def database_pool_watch(name: str, pool: Callable[[], Any]) -> None:
    """Sample `pool()` (a psycopg pool, or None while it is not open) into herald_database_pool_connections."""
    _pools[name] = pool
    _sampler_start()


def _django_pool() -> Any:
    from django.db import connections

    try:
        return connections["default"].pool  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - no pool configured
        return None


def database_pools_sample() -> None:
    """Read each watched pool's statistics into the gauge (cheap: counters the pool already keeps)."""
    for name, getter in list(_pools.items()):
        try:
            pool = getter()
        except Exception:  # noqa: BLE001
            pool = None
        if pool is None:
            continue
        stats = pool.get_stats()
        database_pool_connections.labels(name, "size").set(stats.get("pool_size", 0))
        database_pool_connections.labels(name, "available").set(stats.get("pool_available", 0))
        database_pool_connections.labels(name, "waiting").set(stats.get("requests_waiting", 0))


def _sample_forever() -> None:
    while True:
        time.sleep(SAMPLE_EVERY)
        try:
            database_pools_sample()
        except Exception:  # noqa: BLE001, S112 - a metric never takes the process down
            continue


def _sampler_start() -> None:
    global _sampler
    with _sampler_lock:
        if _sampler is None:
            _sampler = threading.Thread(target=_sample_forever, name="herald-metrics", daemon=True)
            _sampler.start()


def process_start() -> None:
    """Called once per serving process (herald.asgi): watch Django's pool, clean up after this worker."""
    database_pool_watch("django", _django_pool)
    if MULTIPROCESS:
        atexit.register(_multiprocess.mark_process_dead, os.getpid())


# --- the endpoint -----------------------------------------------------------------------------


def metrics_text() -> tuple[bytes, str]:
    """The exposition of every metric (all workers' in multiprocess mode) and its content type."""
    database_pools_sample()
    if MULTIPROCESS:
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
