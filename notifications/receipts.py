"""Delivery receipts: when a message was first written to one of its recipient's sockets.

Off the hot path and in batches. The hub calls `delivered` for live frames and
the consumer's catch-up calls `replayed`; both only append to this event
loop's buffer; a flusher task on the same loop writes what gathered every
FLUSH_EVERY seconds, or sooner once FLUSH_AT receipts wait: per organisation
ONE `UPDATE ... FROM json_array_elements(...)` that sets `delivered_at` only
where it is still NULL, through the psycopg async pool the lean send path
uses. A receipt lost to a crash or a database hiccup is only a receipt: the
notification itself is already durable, so a failed batch is logged and
dropped, never retried into a growing backlog.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

from notifications.models import InboxItem
from tenants.models import Organization

logger = logging.getLogger(__name__)

FLUSH_EVERY = 0.5  # seconds between writes
FLUSH_AT = 500  # receipts that make the flusher write at once
BUFFER_LIMIT = 200_000  # receipts held at most per loop while the database lags; more are dropped

T_INBOX = InboxItem._meta.db_table
T_ORGANIZATION = Organization._meta.db_table

# Receipts are set only where none is yet, so replays and the sockets of other tabs change nothing.
UPDATE_SQL = f"""
UPDATE {{schema}}.{T_INBOX} AS i SET delivered_at = r.at
FROM (
    SELECT (x->>'m')::uuid AS m, to_timestamp((x->>'at')::float8) AS at, s::bigint AS s
    FROM json_array_elements(%s::json) AS x, json_array_elements_text(x->'s') AS s
) AS r
WHERE i.message_id = r.m AND i.subscriber_id = r.s AND i.delivered_at IS NULL
"""


Receipts = tuple[str, float, list[int]]  # (message id, unix time, subscriber pks)


class Recipient(Protocol):
    """What `delivered` reads from a hub member."""

    subscriber_pk: int | None
    opted_out: frozenset[str]


class _Buffer:
    """One event loop's pending receipts and its flusher task."""

    def __init__(self) -> None:
        # organisation id -> [(message id, unix time, subscriber pks)]: one entry per frame written, however
        # many sockets it went to, so recording a broadcast to 5,000 costs one list of ints.
        self.pending: dict[int, list[Receipts]] = {}
        self.size = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.written = 0  # rows whose delivered_at this loop set (read by tests and benchmarks)

    def add(self, organization_id: int, receipts: Receipts) -> None:
        count = len(receipts[2])
        if not count:
            return
        if self.size + count > BUFFER_LIMIT:
            logger.warning("receipts buffer full: %s delivery receipts dropped", count)
            return
        self.pending.setdefault(organization_id, []).append(receipts)
        self.size += count
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        if self.size >= FLUSH_AT:
            self.wake.set()

    def take(self) -> dict[int, list[Receipts]]:
        pending, self.pending, self.size = self.pending, {}, 0
        self.wake.clear()
        return pending

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), FLUSH_EVERY)
            except TimeoutError:
                pass
            pending = self.take()
            if not pending:
                continue
            try:
                self.written += await _write(pending)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - receipts are best effort; the next batch tries afresh
                logger.warning("writing delivery receipts failed", exc_info=True)


_buffers: dict[asyncio.AbstractEventLoop, _Buffer] = {}
_schemas: dict[int, str] = {}


def _buffer() -> _Buffer:
    loop = asyncio.get_running_loop()
    found = _buffers.get(loop)
    if found is None:
        for old in [old for old in _buffers if old.is_closed()]:
            del _buffers[old]
        found = _buffers[loop] = _Buffer()
    return found


def delivered(organization_id: int, message_id: str, members: Iterable[Recipient], category: str | None) -> None:
    """A live frame for `message_id` was just written to `members` (cheap: appends to a buffer).

    `category` is the one the hub filters opt-outs by (None for direct messages), so a member
    that was skipped is not counted as delivered.
    """
    pks = [
        member.subscriber_pk
        for member in members
        if member.subscriber_pk is not None and (category is None or category not in member.opted_out)
    ]
    _buffer().add(organization_id, (message_id, time.time(), pks))


def replayed(organization_id: int, subscriber_pk: int, items: Iterable[dict[str, Any]]) -> None:
    """The consumer's catch-up wrote these inbox items (payloads with an `id`) to a socket."""
    now = time.time()
    for item in items:
        _buffer().add(organization_id, (str(item["id"]), now, [subscriber_pk]))


async def flush() -> int:
    """Write this loop's pending receipts now; how many rows changed (for tests and shutdown)."""
    buffer = _buffer()
    pending = buffer.take()
    written = await _write(pending) if pending else 0
    buffer.written += written
    return written


def _schema(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _write(pending: dict[int, list[Receipts]]) -> int:
    from notifications.sending import connection_pool  # the send engine's pool; imported late, it imports Django

    pool = await connection_pool()
    written = 0
    async with pool.connection() as conn:
        missing = [pk for pk in pending if pk not in _schemas]
        if missing:
            cursor = await conn.execute(
                f"SELECT id, schema_name FROM public.{T_ORGANIZATION} WHERE id = ANY(%s)", [missing]
            )
            for pk, schema_name in await cursor.fetchall():
                _schemas[int(pk)] = str(schema_name)
        for organization_id, rows in pending.items():
            schema_name = _schemas.get(organization_id)
            if schema_name is None:
                continue  # the organisation is gone
            document = json.dumps([{"m": m, "at": at, "s": pks} for m, at, pks in rows])
            cursor = await conn.execute(UPDATE_SQL.format(schema=_schema(schema_name)), [document])
            written += max(cursor.rowcount, 0)
    return written
