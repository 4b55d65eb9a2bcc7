"""How many sockets each subscriber has open now, across every Herald process.

Each process's hub knows its own sockets (a subscriber's sockets are the
members of its subscriber group). A reporter task per event loop reads those
counts every REPORT_EVERY seconds and writes what changed to Redis: one hash
per subscriber, `herald:sockets:<organisation id>:<subscriber pk>`, one field
per process (`<host>:<pid>:<loop>` -> `<count>|<unix time>`), and rewrites all
its counts every REFRESH_EVERY seconds. A reader sums the fields younger than
STALE_AFTER, so a process that died stops counting within a minute without
anyone cleaning up after it. Redis is only a cache here: when it is down the
count is unknown (None), and nothing else stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from typing import Any

import redis

from herald.redis_clients import redis_async, redis_sync

logger = logging.getLogger(__name__)

REPORT_EVERY = 1.0  # seconds between looks at the hub
REFRESH_EVERY = 20.0  # seconds between rewrites of every count
STALE_AFTER = 60.0  # a process's count older than this no longer counts
KEY_TTL = 120  # seconds a subscriber's hash outlives its last write

_SUBSCRIBER_GROUP = re.compile(r"^t(\d+)\.s(\d+)$")


def presence_key(organization_id: int, subscriber_pk: int) -> str:
    return f"herald:sockets:{int(organization_id)}:{int(subscriber_pk)}"


def local_counts() -> dict[tuple[int, int], int]:
    """(organisation id, subscriber pk) -> this loop's open, authenticated sockets."""
    from notifications.hub import hub

    counts: dict[tuple[int, int], int] = {}
    for group, members in hub().groups.items():
        found = _SUBSCRIBER_GROUP.match(group)
        if found and members:
            counts[(int(found.group(1)), int(found.group(2)))] = len(members)
    return counts


class _Reporter:
    def __init__(self) -> None:
        self.process = f"{socket.gethostname()}:{os.getpid()}:{id(asyncio.get_running_loop()):x}"
        self.written: dict[tuple[int, int], int] = {}
        self.refreshed_at = 0.0
        self.client: Any = None

    async def run(self) -> None:
        self.client = redis_async(socket_timeout=2.0)
        while True:
            await asyncio.sleep(REPORT_EVERY)
            try:
                await self.report()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis down: counts are unknown for a while, nothing else
                logger.warning("socket presence report failed", exc_info=True)
                self.written = {}

    async def report(self) -> None:
        counts = local_counts()
        now = time.time()
        refresh = now - self.refreshed_at >= REFRESH_EVERY
        changed = {k: n for k, n in counts.items() if refresh or self.written.get(k) != n}
        gone = [k for k in self.written if k not in counts]
        if not changed and not gone:
            return
        pipe = self.client.pipeline(transaction=False)
        for (organization_id, pk), n in changed.items():
            key = presence_key(organization_id, pk)
            pipe.hset(key, self.process, f"{n}|{now:.0f}")
            pipe.expire(key, KEY_TTL)
        for organization_id, pk in gone:
            pipe.hdel(presence_key(organization_id, pk), self.process)
        await pipe.execute()
        self.written = counts
        if refresh:
            self.refreshed_at = now


_reporters: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def presence_watch() -> None:
    """Make sure this event loop reports its sockets (called when a socket is signed in; cheap)."""
    loop = asyncio.get_running_loop()
    task = _reporters.get(loop)
    if task is None or task.done():
        for old in [old for old in _reporters if old.is_closed()]:
            del _reporters[old]
        _reporters[loop] = loop.create_task(_Reporter().run())


def sockets_open(*, organization_id: int, subscriber_pk: int) -> int | None:
    """The subscriber's open sockets across all processes (up to REPORT_EVERY old); None if Redis is down."""
    client = redis_sync(socket_timeout=1.0)
    try:
        fields: dict[bytes, bytes] = client.hgetall(presence_key(organization_id, subscriber_pk))  # type: ignore[assignment]
    except redis.RedisError:
        return None
    finally:
        client.close()
    fresh_after = time.time() - STALE_AFTER
    total = 0
    for value in fields.values():
        count, _, at = value.decode().partition("|")
        try:
            if float(at) >= fresh_after:
                total += int(count)
        except ValueError:
            continue
    return total
