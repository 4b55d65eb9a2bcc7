"""The monthly notification quota, a per-send step of the send engine (registered in BillingConfig.ready).

What it counts is one notification per accepted send (a message; a batch of N counts N), the figure
`usage_days` reads as `messages` from the message rows. The hot path counts no rows: each process keeps
a per-organisation counter for the month, seeded from those rows and shared through Redis.

- Far from the limit a send only adds to this process's counter (no I/O); what it added goes to the
  shared Redis counter (INCRBY) at most SYNC_SECONDS later, and the process reads the total back then.
- Near the limit (within NEAR_FRACTION of it, at least NEAR_MIN), on a hard-stop plan, every send reserves
  in Redis itself, atomically: a send that would cross the line is refused there, so processes together
  never go over it.
- The Redis counter is only a cache: when it is missing it is seeded from the message rows (and it
  expires after SEED_SECONDS, so any drift — a reservation whose transaction then failed — is corrected
  from the rows). With Redis down each process counts alone from the rows (re-read every SYNC_SECONDS)
  plus its own sends: the quota still holds in every process and sending goes on.

Free stops at its limit (`quota-exceeded`, 429, with the limit and when it resets); paid plans go on and
what goes over is overage (billing.usage). A batch that would cross the line is refused whole: nothing of
it is written (sending.py refuses whole units). Another organisation's counter is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from billing.plans import Plan, plan_for
from billing.usage import frozen_before, month_start, period_resets_at
from herald.problems import Problem
from herald.redis_clients import redis_async
from notifications.sending import SendCheck, SendCommitted

logger = logging.getLogger(__name__)

SYNC_SECONDS = 1.0
SEED_SECONDS = 300
NEAR_FRACTION = 0.02
NEAR_MIN = 50
REDIS_PAUSE_SECONDS = 2.0  # after a failed Redis call, count locally this long before trying again

# KEYS[1] the shared counter; ARGV: what this process counted since it last synced, the send's count, the limit
# ('' for none). Returns -1 when the counter is missing (to be seeded), else {total, accepted}.
_RESERVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
local n = tonumber(ARGV[2])
if ARGV[3] ~= '' and total + n > tonumber(ARGV[3]) then return {total, 0} end
if n > 0 then total = redis.call('INCRBY', KEYS[1], n) end
return {total, 1}
"""


def quota_key(organization_id: int, period: str) -> str:
    return f"herald:quota:{int(organization_id)}:{period}"


@dataclass
class _Counter:
    """One organisation's month in this process: the total last known and what this process added since."""

    period: str
    base: int
    unsynced: int = 0
    synced_at: float = 0.0
    shared: bool = False  # base came from Redis (else from the rows)


class QuotaStep:
    """The send step: refuses a send over a hard-stop plan's monthly quota; counts every accepted one."""

    def __init__(self) -> None:
        self.counters: dict[int, _Counter] = {}
        self._redis: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._redis_paused_until = 0.0
        self._period_name = ""
        self._period_ends = 0.0

    # --- the step -------------------------------------------------------------------------------

    async def check(self, send: SendCheck) -> None:
        """Refuse `send` with quota-exceeded when it would take a hard-stop plan over its monthly quota."""
        if not settings.HERALD_QUOTAS:
            return
        plan = plan_for(send.plan or await _plan_of(send.organization_id))
        limit = plan.monthly_notifications
        if limit is None:
            return
        n = len(send.drafts)
        period = self._period()
        counter = self.counters.get(send.organization_id)
        if counter is None or counter.period != period:
            counter = self._seed(send, period)
        stale = time.monotonic() - counter.synced_at >= SYNC_SECONDS
        near = counter.base + counter.unsynced + n > limit - max(NEAR_MIN, int(limit * NEAR_FRACTION))
        if not stale and not (near and not plan.overage):
            counter.unsynced += n
            return
        now = datetime.now(tz=UTC)
        if now.strftime("%Y%m") != counter.period:  # the month turned since _period looked
            counter = self._seed(send, now.strftime("%Y%m"))
        await self._sync(send, counter, n, limit if not plan.overage else None, plan, now)

    def _period(self) -> str:
        """The current month as YYYYMM (UTC), recomputed only when the cached one has ended (the hot path)."""
        if time.time() >= self._period_ends:
            now = datetime.now(tz=UTC)
            self._period_name = now.strftime("%Y%m")
            self._period_ends = period_resets_at(now.date()).timestamp()
        return self._period_name

    async def committed(self, sent: SendCommitted) -> None:
        """Counted at `check` already (before the write, so the next send of the group sees it)."""

    def forget(self, organization_id: int) -> None:
        """Drop this process's counter of the organisation: the next send reads the shared count again."""
        self.counters.pop(organization_id, None)

    # --- counting ---------------------------------------------------------------------------------

    async def _sync(
        self, send: SendCheck, counter: _Counter, n: int, limit: int | None, plan: Plan, now: datetime
    ) -> None:
        """Flush what this process counted to Redis and reserve `n` there; refuse if over `limit`."""
        accepted = True
        client = self._client()
        if client is not None:
            try:
                found = await client.eval(_RESERVE, 1, quota_key(send.organization_id, counter.period),
                                          counter.unsynced, n, "" if limit is None else limit)  # fmt: skip
                if found == -1:
                    await self._seed_shared(client, send, counter, plan, now)
                    found = await client.eval(_RESERVE, 1, quota_key(send.organization_id, counter.period),
                                              0, n, "" if limit is None else limit)  # fmt: skip
                # The total holds what this process counted and, when accepted, this send.
                counter.base, counter.unsynced, counter.shared = int(found[0]), 0, True
                counter.synced_at = time.monotonic()
                accepted = bool(int(found[1]))
            except Exception:  # noqa: BLE001 - Redis is a cache: count from the rows meanwhile
                logger.warning("quota counter unavailable; counting in this process", exc_info=True)
                self._redis_paused_until = time.monotonic() + REDIS_PAUSE_SECONDS
                client = None
        if client is None:
            if counter.shared or time.monotonic() - counter.synced_at >= SYNC_SECONDS:
                # Every send of this organisation and loop before this one committed (one group at a time).
                counter.base, counter.unsynced, counter.shared = await _rows_count(send, plan, now), 0, False
                counter.synced_at = time.monotonic()
            accepted = limit is None or counter.base + counter.unsynced + n <= limit
            if accepted:
                counter.unsynced += n
        if not accepted:
            assert limit is not None
            _refuse(plan, limit, counter.base + counter.unsynced, n, now)

    def _seed(self, send: SendCheck, period: str) -> _Counter:
        counter = _Counter(period=period, base=0, synced_at=-SYNC_SECONDS)  # stale: the first check syncs
        self.counters[send.organization_id] = counter
        return counter

    async def _seed_shared(self, client: Any, send: SendCheck, counter: _Counter, plan: Plan, now: datetime) -> None:
        """Seed the missing shared counter from the message rows (another process may have seeded it first)."""
        count = await _rows_count(send, plan, now)
        await client.set(quota_key(send.organization_id, counter.period), count, nx=True, ex=SEED_SECONDS)
        counter.unsynced = 0  # this process's sends so far are in the rows

    def _client(self) -> Any:
        if time.monotonic() < self._redis_paused_until:
            return None
        loop = asyncio.get_running_loop()
        client = self._redis.get(loop)
        if client is None:
            client = redis_async(socket_timeout=1.0)
            self._redis[loop] = client
        return client


def _refuse(plan: Plan, limit: int, used: int, n: int, now: datetime) -> None:
    resets_at = period_resets_at(now.date())
    what = f"this batch of {n}" if n > 1 else "this notification"
    raise Problem(
        "quota-exceeded",
        f"The {plan.name} plan's {limit:,} notifications a month are used up ({used:,} sent, {what} would go "
        f"over); nothing was written. The quota resets at {resets_at:%Y-%m-%d %H:%M} UTC, or upgrade the plan.",
        headers={"Retry-After": str(max(1, int((resets_at - now).total_seconds())))},
        limit=limit,
        limit_name="monthly_notifications",
        used=used,
        plan=plan.code,
        resets_at=resets_at.isoformat().replace("+00:00", "Z"),
    )


def _conninfo() -> str:
    from notifications.sending import database_conninfo

    return database_conninfo("herald-quota")


async def _rows_count(send: SendCheck, plan: Plan, now: datetime) -> int:
    """The organisation's notifications this month from durable rows: the truth the counters are caches of.

    The message rows of each day, but the ledger's figure for a day retention may have thinned
    (billing.usage.frozen_before)."""
    import psycopg

    from billing.models import UsageDay
    from notifications.models import Message

    schema = '"' + send.schema_name.replace('"', '""') + '"'
    first = month_start(now.date())
    sql = f"""
        WITH frozen AS (
            SELECT day, messages FROM public.{UsageDay._meta.db_table}
            WHERE organization_id = %(org)s AND day >= %(first)s AND day < %(cutoff)s
        ), kept AS (
            SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
            FROM {schema}.{Message._meta.db_table} WHERE created_at >= %(since)s GROUP BY 1
        )
        SELECT coalesce((SELECT sum(messages) FROM frozen), 0)
             + coalesce((SELECT sum(n) FROM kept WHERE day NOT IN (SELECT day FROM frozen)), 0)"""
    params = {
        "org": send.organization_id,
        "first": first,
        "cutoff": frozen_before(plan, now.date()),
        "since": datetime.combine(first, datetime.min.time(), tzinfo=UTC),
    }
    async with await psycopg.AsyncConnection.connect(_conninfo(), autocommit=True, connect_timeout=5) as conn:
        cursor = await conn.execute(sql, params)
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def _plan_of(organization_id: int) -> str:
    """The organisation's plan, for the rare sender that did not know it."""
    import psycopg

    from tenants.models import Organization

    async with await psycopg.AsyncConnection.connect(_conninfo(), autocommit=True, connect_timeout=5) as conn:
        cursor = await conn.execute(
            f"SELECT plan FROM public.{Organization._meta.db_table} WHERE id = %s", [organization_id]
        )
        row = await cursor.fetchone()
    return str(row[0]) if row else "free"


quota_step = QuotaStep()
