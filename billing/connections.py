"""The durable records of sockets that the ledger reads: active subscribers and peak connections.

notifications.socket_limits tells `ConnectionRecorder.entered` of every authenticated socket (and asks
`organization_cap` for the plan's cap of concurrent connections: over it a new socket closes with 4429).
The recorder only gathers in memory; a task on the same event loop writes every FLUSH_SECONDS:

- one `SubscriberActivity` row per organisation, subscriber and UTC day (INSERT ... ON CONFLICT DO NOTHING);
- one `ConnectionSample` per organisation, minute and process with the most sockets this process held in
  that minute (upserted with GREATEST), the open count included at every write, so a socket held across
  midnight counts on both days.

Like delivery receipts these are usage, not messages: a batch lost to a database hiccup is logged and
dropped. Caps and samples are per process (as the other socket caps are): with N processes the cap is
N times the plan's, and the day's peak is the largest per-minute sum over processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from datetime import UTC, datetime
from typing import Any

from billing.models import ConnectionSample, SubscriberActivity
from billing.plans import plan_for
from notifications.socket_limits import socket_limits
from tenants.models import Organization

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
SEEN_MAX = 200_000  # (organisation, day, subscriber) already recorded by this process

T_ACTIVITY = SubscriberActivity._meta.db_table
T_SAMPLE = ConnectionSample._meta.db_table
T_ORGANIZATION = Organization._meta.db_table

ACTIVITY_SQL = f"""
INSERT INTO public.{T_ACTIVITY} (organization_id, day, subscriber_pk)
SELECT x.o, x.d, x.s FROM json_to_recordset(%s::json) AS x(o bigint, d date, s bigint)
WHERE EXISTS (SELECT 1 FROM public.{T_ORGANIZATION} g WHERE g.id = x.o)
ON CONFLICT (organization_id, day, subscriber_pk) DO NOTHING
"""
SAMPLE_SQL = f"""
INSERT INTO public.{T_SAMPLE} (organization_id, minute, process, peak)
SELECT x.o, x.m, %s, x.p FROM json_to_recordset(%s::json) AS x(o bigint, m timestamptz, p int)
WHERE EXISTS (SELECT 1 FROM public.{T_ORGANIZATION} g WHERE g.id = x.o)
ON CONFLICT (organization_id, minute, process) DO UPDATE SET peak = GREATEST({T_SAMPLE}.peak, EXCLUDED.peak)
"""


def organization_cap(plan: str) -> int | None:
    """The plan's concurrent connections (None: no cap)."""
    return plan_for(plan).concurrent_connections


def _minute(now: datetime) -> str:
    return now.replace(second=0, microsecond=0).isoformat()


class ConnectionRecorder:
    """Gathers sockets' activity and peaks in memory; a task of the event loop writes them (see module)."""

    def __init__(self) -> None:
        self.process = f"{socket.gethostname()}:{os.getpid()}"[:100]
        self.activity: list[dict[str, Any]] = []
        self.seen: set[tuple[int, str, int]] = set()
        self.peaks: dict[tuple[int, str], int] = {}
        self.task: asyncio.Task[None] | None = None

    def entered(self, organization_id: int, subscriber_pk: int, open_sockets: int) -> None:
        now = datetime.now(tz=UTC)
        day = now.date().isoformat()
        name = (organization_id, day, subscriber_pk)
        if name not in self.seen:
            if len(self.seen) >= SEEN_MAX:
                self.seen.clear()
            self.seen.add(name)
            self.activity.append({"o": organization_id, "d": day, "s": subscriber_pk})
        sample = (organization_id, _minute(now))
        self.peaks[sample] = max(self.peaks.get(sample, 0), open_sockets)
        if self.task is None or self.task.done():
            try:
                self.task = asyncio.get_running_loop().create_task(self._flusher())
            except RuntimeError:  # no loop (a sync caller): recorded at the next socket on a loop
                pass

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            minute = _minute(datetime.now(tz=UTC))
            for organization_id, count in socket_limits.per_organization.items():
                if count > 0:
                    sample = (organization_id, minute)
                    self.peaks[sample] = max(self.peaks.get(sample, 0), count)
            if not self.activity and not self.peaks:
                if not socket_limits.per_organization:
                    return  # nothing open: the next socket starts a flusher again
                continue
            activity, self.activity = self.activity, []
            peaks, self.peaks = self.peaks, {}
            try:
                await self._write(activity, peaks)
            except Exception:  # noqa: BLE001 - usage records: logged and dropped, never a growing backlog
                logger.warning("could not write %d socket activity rows", len(activity), exc_info=True)

    async def _write(self, activity: list[dict[str, Any]], peaks: dict[tuple[int, str], int]) -> None:
        from notifications.sending import connection_pool

        samples = [{"o": o, "m": m, "p": p} for (o, m), p in peaks.items()]
        pool = await connection_pool()
        async with pool.connection() as conn:
            if activity:
                await conn.execute(ACTIVITY_SQL, [json.dumps(activity)])
            if samples:
                await conn.execute(SAMPLE_SQL, [self.process, json.dumps(samples)])


recorder = ConnectionRecorder()


def connection_watch_register() -> None:
    """Give notifications' socket limits the plans' connection caps and this recorder (BillingConfig.ready)."""
    socket_limits.organization_cap = organization_cap
    if recorder not in socket_limits.watchers:
        socket_limits.watchers.append(recorder)
