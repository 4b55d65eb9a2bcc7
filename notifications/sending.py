"""The send engine: every way of sending a notification goes through here.

POST /v1/notifications and /batch (notifications.lean, with or without Idempotency-Key), the Django
views of the same routes, the demo page and any command all call `notification_send` or
`notification_send_batch` (or their `_blocking` forms from sync code). One send goes:

1. validated by the caller (notifications.schemas / api models) into NotificationDrafts;
2. queued for its organisation: while one transaction of that organisation commits, the next sends
   queue, then go together in ONE transaction (group commit, up to MAX_GROUP notifications);
3. in that transaction: its idempotency keys claimed (notifications.idempotency; a key already used
   replays its stored answer and writes nothing), its topics checked, the per-send steps asked
   (`steps`: a quota may refuse a whole send here, before anything is written), then every message,
   inbox item and the sequence written by ONE statement (SEND_SQL, the only place in the code that
   writes messages and inbox items), the answers of claimed keys stored, COMMIT;
4. answered only after that commit; then published to the channel layer (a hint: clients recover
   by cursor) and handed to the steps' `committed`.

Without idempotency keys the transaction is one round trip (BEGIN ... COMMIT as one simple-protocol
query); with keys it is three (claim, write, store + commit). A group that fails on a lost connection
(a terminated backend, a restarted PostgreSQL) is tried once more on a fresh connection, after
checking whether the first attempt committed after all; if that fails too, its sends are answered
503 `service-unavailable` with Retry-After, never a 202 without its row.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import os
import re
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

import psycopg
from django.conf import settings
from django.utils import timezone

from herald import metrics
from herald.problems import Problem
from notifications.idempotency import (
    CLAIMED_SQL,
    CLAIMS_SQL,
    RELEASES_SQL,
    STORES_SQL,
    IdempotencyClaim,
    claims_json,
    idempotency_replay,
)
from notifications.models import Message
from notifications.schemas import MessageFields, inbox_item_payload
from notifications.services import (
    SUBSCRIBERS_ENSURE_SQL,
    T_INBOX,
    T_MESSAGE,
    T_PREFERENCE,
    T_SEQUENCE,
    T_SUBSCRIBER,
    T_TOPIC,
    T_TOPICSUB,
)
from tenants.models import ApiKey
from tenants.resolve import ResolvedKey

logger = logging.getLogger(__name__)

MAX_GROUP = 200  # notifications per transaction (a batch is never split)
SEND_ENDPOINT = "/v1/notifications"  # the endpoint of single sends' keys, shared by batch items' keys
BATCH_ENDPOINT = "/v1/notifications/batch"
RETRY_AFTER_SECONDS = 1
T_APIKEY = ApiKey._meta.db_table
_T = TypeVar("_T")


# --- what is sent ----------------------------------------------------------------------------


@dataclass
class NotificationDraft:
    """One notification to send: exactly one audience, its content, and its own idempotency key if any."""

    title: str
    to: list[str] | None = None
    topic: str | None = None
    broadcast: bool = False
    body: str = ""
    action_url: str = ""
    category: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    idempotency: IdempotencyClaim | None = None

    @property
    def audience(self) -> str:
        if self.broadcast:
            return Message.Audience.BROADCAST
        if self.topic is not None:
            return Message.Audience.TOPIC
        return Message.Audience.SUBSCRIBERS


@dataclass(frozen=True)
class Sender:
    """Who sends: the organisation (its id names the real-time groups, its schema the tables) and the key."""

    organization_id: int
    schema_name: str
    api_key_id: int | None = None  # its last_used_at is touched in the send's transaction when `touch`
    touch: bool = False
    plan: str | None = None  # the organisation's plan code when the caller knows it (a resolved key does)

    @classmethod
    def for_key(cls, key: ResolvedKey, *, touch: bool) -> Sender:
        return cls(
            organization_id=key.organization_id,
            schema_name=key.schema_name,
            api_key_id=key.api_key_id,
            touch=touch,
            plan=key.plan,
        )


@dataclass(frozen=True)
class SendResult:
    """What a sender is told: the message, its sequence and how many inboxes it reached."""

    id: str
    seq: int
    recipients: int

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "recipients": self.recipients}


@dataclass(frozen=True)
class SendAnswer:
    """The whole answer to a send: HTTP status, JSON body, and whether it replays a stored first answer."""

    status: int
    body: Any
    replayed: bool = False


# --- per-send steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SendCheck:
    """What a step's `check` sees: one send (or batch) about to be written, before anything is."""

    organization_id: int
    schema_name: str
    api_key_id: int | None
    drafts: tuple[NotificationDraft, ...]  # those that will be written (replays and failed items left out)
    batch: bool
    plan: str | None = None  # the organisation's plan code, when the sender knew it


@dataclass(frozen=True)
class SendCommitted:
    """What a step's `committed` sees: the messages of one send (or batch), committed."""

    organization_id: int
    schema_name: str
    api_key_id: int | None
    drafts: tuple[NotificationDraft, ...]
    results: tuple[SendResult, ...]  # in the order of `drafts`
    batch: bool


class SendStep(Protocol):
    """A step attached to every send (`steps.register`): quotas, usage counters, receipts, outbound events.

    `check` runs inside the send's transaction, after its idempotency keys are claimed (a replay is never
    checked) and before anything is written; raising a Problem refuses the whole send or batch with that
    problem, and nothing of it is written. Keep it quick: its organisation's next sends wait for it.
    `committed` runs after the commit, off the answer's path; what it raises is logged, never answered.
    Usage is derivable from the durable rows (the messages, as GET /v1/usage reads them): a counter kept
    by `committed` is a cache of those rows.
    """

    async def check(self, send: SendCheck) -> None:
        """Refuse `send` by raising a Problem; return to let it go on."""

    async def committed(self, sent: SendCommitted) -> None:
        """Hear of a committed send."""


class SendSteps:
    """The registry of per-send steps, in registration order (plus those HERALD_SEND_STEPS names)."""

    def __init__(self) -> None:
        self._steps: list[SendStep] = []
        self._configured = False

    def register(self, step: SendStep) -> SendStep:
        """Attach `step` to every send from now on (e.g. in an AppConfig.ready); returns it."""
        if step not in self._steps:
            self._steps.append(step)
        return step

    def unregister(self, step: SendStep) -> None:
        if step in self._steps:
            self._steps.remove(step)

    def _load_configured(self) -> None:
        self._configured = True
        for path in getattr(settings, "HERALD_SEND_STEPS", []):
            module, _, name = path.rpartition(".")
            self.register(getattr(importlib.import_module(module), name)())

    def __iter__(self) -> Iterator[SendStep]:
        if not self._configured:
            self._load_configured()
        return iter(list(self._steps))

    def __bool__(self) -> bool:
        if not self._configured:
            self._load_configured()
        return bool(self._steps)


steps = SendSteps()


# --- the one statement that writes messages and inbox items ---------------------------------------

SEND_SQL = f"""
WITH items AS (
    SELECT * FROM json_to_recordset(%(items)s::json) AS x(
        ord int, id uuid, audience text, topic_id bigint, title text, body text, action_url text,
        category text, data jsonb, to_ids text[])
),
taken AS (
    INSERT INTO {T_SEQUENCE} AS q (id, value) VALUES (1, %(n)s)
    ON CONFLICT (id) DO UPDATE SET value = q.value + EXCLUDED.value
    RETURNING value
),
numbered AS (
    SELECT i.*, (SELECT value FROM taken) - %(n)s + i.ord AS seq FROM items i
),
recipients AS (
    SELECT n.id AS mid, s.id AS sid, n.seq, n.category FROM numbered n
        CROSS JOIN LATERAL unnest(n.to_ids) AS t(external_id)
        JOIN {T_SUBSCRIBER} s ON s.external_id = t.external_id
        WHERE n.audience = 'subscribers'
    UNION ALL
    SELECT n.id, ts.subscriber_id, n.seq, n.category FROM numbered n
        JOIN {T_TOPICSUB} ts ON ts.topic_id = n.topic_id
        WHERE n.audience = 'topic'
    UNION ALL
    SELECT n.id, s.id, n.seq, n.category FROM numbered n CROSS JOIN {T_SUBSCRIBER} s
        WHERE n.audience = 'broadcast'
),
kept AS (
    SELECT r.* FROM recipients r
    WHERE r.category = '' OR NOT EXISTS (
        SELECT 1 FROM {T_PREFERENCE} p WHERE p.subscriber_id = r.sid AND p.category = r.category AND NOT p.enabled)
),
counted AS (
    SELECT mid, count(*) AS recipients,
           CASE WHEN count(*) <= %(pk_limit)s THEN array_agg(sid ORDER BY sid) END AS sids
    FROM kept GROUP BY mid
),
inbox AS (
    INSERT INTO {T_INBOX} (message_id, subscriber_id, seq, category, created_at)
    SELECT mid, sid, seq, category, %(now)s FROM kept
),
messages AS (
    INSERT INTO {T_MESSAGE}
        (id, seq, audience, topic_id, title, body, action_url, category, data, recipient_count, created_at)
    SELECT n.id, n.seq, n.audience, n.topic_id, n.title, n.body, n.action_url, n.category, n.data,
           coalesce(c.recipients, 0), %(now)s
    FROM numbered n LEFT JOIN counted c ON c.mid = n.id
)
SELECT n.ord, n.seq, coalesce(c.recipients, 0), c.sids FROM numbered n LEFT JOIN counted c ON c.mid = n.id
ORDER BY n.ord
"""

# Up to this many recipients of a `to` message, their pks go to the publisher.
PUBLISH_PK_LIMIT = 1000


@dataclass(frozen=True)
class PreparedSend:
    """What SEND_SQL takes for a list of drafts, and what reading its rows needs."""

    ids: list[uuid.UUID]
    now: datetime
    params: dict[str, Any]


def send_prepare(drafts: list[NotificationDraft], topic_pks: dict[str, int], ids: list[uuid.UUID]) -> PreparedSend:
    """The parameters of SEND_SQL for `drafts` (audiences already checked), their message ids given."""
    now = timezone.now()
    items = [
        {
            "ord": index + 1,
            "id": str(ids[index]),
            "audience": draft.audience,
            "topic_id": topic_pks.get(draft.topic) if draft.topic is not None else None,
            "title": draft.title,
            "body": draft.body,
            "action_url": draft.action_url,
            "category": draft.category,
            "data": draft.data,
            "to_ids": sorted(set(draft.to or [])),
        }
        for index, draft in enumerate(drafts)
    ]
    params = {"items": json.dumps(items), "n": len(items), "now": now, "pk_limit": PUBLISH_PK_LIMIT}
    return PreparedSend(ids=ids, now=now, params=params)


@dataclass(frozen=True)
class SentMessage:
    """A message as written: the sender's result and what its publication needs."""

    result: SendResult
    notification: dict[str, Any]
    audience: str
    topic_pk: int | None
    subscriber_pks: list[int] | None


def send_results(
    prepared: PreparedSend, drafts: list[NotificationDraft], topic_pks: dict[str, int], rows: list[Any]
) -> list[SentMessage]:
    """Read SEND_SQL's rows: one SentMessage per draft, in order."""
    sent = []
    for (_, seq, recipients, sids), draft, message_id in zip(rows, drafts, prepared.ids, strict=True):
        # The fields inbox_item_payload reads, without a model instance per message (a batch's hot spot).
        message = MessageFields(
            id=message_id,
            seq=seq,
            title=draft.title,
            body=draft.body,
            action_url=draft.action_url,
            category=draft.category,
            data=draft.data,
            created_at=prepared.now,
        )
        sent.append(
            SentMessage(
                result=SendResult(id=str(message_id), seq=int(seq), recipients=int(recipients)),
                notification=inbox_item_payload(message) if recipients else {},
                audience=draft.audience,
                topic_pk=topic_pks.get(draft.topic) if draft.topic is not None else None,
                subscriber_pks=list(sids) if sids is not None else None,
            )
        )
    return sent


def sent_message_events(organization_id: int, sent: list[SentMessage]) -> list[tuple[str, dict[str, Any]]]:
    """The channel-layer events that announce the messages of `sent` that reached anyone."""
    from notifications.realtime import messages_events

    return messages_events(
        organization_id,
        [
            {
                "notification": message.notification,
                "audience": message.audience,
                "topic_pk": message.topic_pk,
                "subscriber_pks": message.subscriber_pks,
            }
            for message in sent
            if message.result.recipients
        ],
    )


# --- the engine's API -------------------------------------------------------------------------------


async def notification_send(
    *, sender: Sender, draft: NotificationDraft, idempotency: IdempotencyClaim | None = None
) -> SendAnswer:
    """Send one notification: 202 and its result once committed (or the stored answer of its key)."""
    return await _engine().submit(sender, _Unit.create([draft], batch=False, claim=idempotency, sender=sender))


async def notification_send_batch(
    *, sender: Sender, drafts: list[NotificationDraft], idempotency: IdempotencyClaim | None = None
) -> SendAnswer:
    """Send up to 100 notifications: 200 with one result per item, each written whole or not at all."""
    return await _engine().submit(sender, _Unit.create(drafts, batch=True, claim=idempotency, sender=sender))


def notification_send_blocking(
    *, sender: Sender, draft: NotificationDraft, idempotency: IdempotencyClaim | None = None
) -> SendAnswer:
    """notification_send for sync code (Django views, commands); raises what it raises."""
    return _bridge.run(notification_send(sender=sender, draft=draft, idempotency=idempotency))


def notification_send_batch_blocking(
    *, sender: Sender, drafts: list[NotificationDraft], idempotency: IdempotencyClaim | None = None
) -> SendAnswer:
    """notification_send_batch for sync code."""
    return _bridge.run(notification_send_batch(sender=sender, drafts=drafts, idempotency=idempotency))


def run_blocking(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Await `coroutine` from sync code (a Django view) on the engine's loop, as the `_blocking` sends do."""
    return _bridge.run(coroutine)


class _Bridge:
    """Sync callers' way in: the caller's event loop when a sync view runs for one (async_to_sync reuses it),
    else one long-lived loop thread of the engine's own (a fresh loop per call would strand its pool)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                # No pool here: its idle connections would outlive the caller (a command, a test session
                # whose database is then dropped); each transaction has a connection of its own.
                _engines[loop] = _Engine(pooled=False)
                threading.Thread(target=loop.run_forever, name="herald-send", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        from asgiref.sync import async_to_sync

        from herald.compat import asgiref_runs_for_a_loop

        if asgiref_runs_for_a_loop():

            async def awaited() -> _T:
                return await coroutine

            return async_to_sync(awaited)()
        return asyncio.run_coroutine_threadsafe(coroutine, self._own_loop()).result(60)


_bridge = _Bridge()


# --- units of work -------------------------------------------------------------------------------


@dataclass
class _Item:
    """One notification of a unit, and its outcome in the current attempt."""

    draft: NotificationDraft
    message_id: uuid.UUID
    outcome: SendResult | Problem | tuple[int, Any] | None = None  # tuple: (status, body) replayed
    settled_early: bool = False  # its outcome was decided before any statement: an attempt keeps it


@dataclass
class _Unit:
    """What one caller asked for (a single send or a batch): answered as one, never split across groups."""

    items: list[_Item]
    batch: bool
    claim: IdempotencyClaim | None
    sender: Sender
    future: asyncio.Future[SendAnswer] | None = None
    answer: SendAnswer | None = None
    refused: Problem | None = None

    @classmethod
    def create(
        cls, drafts: list[NotificationDraft], *, batch: bool, claim: IdempotencyClaim | None, sender: Sender
    ) -> _Unit:
        unit = cls(
            items=[_Item(draft=d, message_id=uuid.uuid4()) for d in drafts], batch=batch, claim=claim, sender=sender
        )
        seen: set[str] = set()
        for item in unit.items:  # a key twice in one batch: the second is refused, before any claim
            item_claim = item.draft.idempotency
            if item_claim is not None:
                if item_claim.key in seen:
                    item.outcome = Problem("idempotency-key-reused", "Key repeated within the batch")
                    item.settled_early = True
                seen.add(item_claim.key)
        return unit

    def reset(self) -> None:
        """Forget the outcomes of a failed attempt (kept: what was decided before any statement)."""
        self.answer = None
        self.refused = None
        for item in self.items:
            if not item.settled_early:
                item.outcome = None

    def claims(self) -> list[IdempotencyClaim]:
        found = [self.claim] if self.claim is not None else []
        found += [i.draft.idempotency for i in self.items if i.draft.idempotency is not None and i.outcome is None]
        return found

    @property
    def size(self) -> int:
        return len(self.items)


def _problem_entry(problem: Problem) -> dict[str, Any]:
    kind = problem.problem_type
    return {"type": kind.uri, "title": kind.title, "status": kind.status, "detail": problem.detail}


def _unit_answer(unit: _Unit) -> SendAnswer | Problem:
    """The unit's answer from its items' outcomes (every item decided)."""
    if unit.refused is not None:
        return unit.refused
    if not unit.batch:
        outcome = unit.items[0].outcome
        if isinstance(outcome, SendResult):
            return SendAnswer(202, outcome.as_dict())
        if isinstance(outcome, Problem):
            return outcome
        assert outcome is not None
        return SendAnswer(outcome[0], outcome[1], replayed=True)  # pragma: no cover - a single send's key is the unit's
    results = []
    for index, item in enumerate(unit.items):
        entry: dict[str, Any] = {"index": index, "replayed": False, "id": None, "seq": None, "recipients": None}
        outcome = item.outcome
        if isinstance(outcome, SendResult):
            entry.update(status=202, error=None, **outcome.as_dict())
        elif isinstance(outcome, tuple):
            status, body = outcome
            entry.update(status=status, replayed=True, error=None, id=body["id"], seq=body["seq"])
            entry["recipients"] = body["recipients"]
        else:
            problem = outcome if isinstance(outcome, Problem) else Problem("internal-error")
            entry.update(status=problem.status, error=_problem_entry(problem))
        results.append(entry)
    return SendAnswer(200, {"results": results})


# --- the engine ----------------------------------------------------------------------------------


@dataclass
class _Queue:
    units: list[_Unit] = field(default_factory=list)
    running: bool = False


class _Engine:
    """The engine's state on one event loop: its connection pool and its per-organisation queues."""

    def __init__(self, *, pooled: bool = True) -> None:
        self.pooled = pooled
        self.pool: Any = None
        self._pool_lock = asyncio.Lock()
        self.queues: dict[str, _Queue] = {}
        self.background: set[asyncio.Task[Any]] = set()
        # Socket replays holding a pooled connection at once: at most half the pool, the rest kept for sends
        # (notifications.delivery.missed_since_async; see replay_slot).
        self.replays = asyncio.Semaphore(max(1, int(settings.HERALD_INGEST_POOL_SIZE) // 2))

    async def submit(self, sender: Sender, unit: _Unit) -> SendAnswer:
        loop = asyncio.get_running_loop()
        unit.future = loop.create_future()
        queue = self.queues.setdefault(sender.schema_name, _Queue())
        queue.units.append(unit)
        if not queue.running:
            queue.running = True
            self.spawn(self.drain(queue))
        answer = await unit.future
        return answer

    def spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # connections

    def conninfo(self) -> str:
        return database_conninfo(f"herald-send-{os.getpid()}")

    async def get_pool(self) -> Any:
        if self.pool is None:
            async with self._pool_lock:
                if self.pool is None:
                    from psycopg_pool import AsyncConnectionPool

                    # All connections opened up front and kept: a pool growing under load would add a
                    # backend start (and its cold catalog caches) to the requests that made it grow.
                    size = int(settings.HERALD_INGEST_POOL_SIZE)
                    pool = AsyncConnectionPool(
                        self.conninfo(),
                        min_size=size,
                        max_size=size,
                        open=False,
                        timeout=10,
                        kwargs={"autocommit": True},
                    )
                    await pool.open()
                    self.pool = pool
                    metrics.database_pool_watch("send", lambda: pool)
        return self.pool

    # group commit

    async def drain(self, queue: _Queue) -> None:
        try:
            while queue.units:
                group: list[_Unit] = []
                size = 0
                while queue.units and (not group or size + queue.units[0].size <= MAX_GROUP):
                    unit = queue.units.pop(0)
                    group.append(unit)
                    size += unit.size
                group, deferred = _without_duplicate_claims(group)
                queue.units[:0] = deferred
                await self.commit_group(group)
        finally:
            queue.running = False

    async def commit_group(self, group: list[_Unit]) -> None:
        """Write `group`, answer every unit of it whatever happens."""
        try:
            try:
                await self.flush(group, fresh=False)
            except (psycopg.OperationalError, _pool_errors()) as exc:
                # The connection was lost (or none could be had): the group may or may not have committed.
                # Once more on a fresh connection, which first looks for the group's messages.
                logger.warning("group commit of %d sends lost its connection; once more", len(group), exc_info=exc)
                if self.pool is not None:
                    self.spawn(self.pool.check())  # drop the pool's other dead connections
                for unit in group:
                    unit.reset()
                await self.flush(group, fresh=True)
        except (psycopg.OperationalError, _pool_errors()):
            logger.exception("group commit of %d sends failed twice", len(group))
            unavailable = Problem(
                "service-unavailable",
                "The database did not answer; nothing was written. Retry later.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            for unit in group:
                _settle(unit, unavailable)
        except psycopg.DatabaseError as exc:
            # A statement refused by the database rolled the whole group back: each unit alone, so one bad
            # send fails alone.
            if len(group) == 1:
                logger.exception("sending failed")
                _settle(group[0], exc)
                return
            logger.warning("group of %d sends refused; each alone", len(group), exc_info=True)
            for unit in group:
                if unit.future is not None and not unit.future.done():
                    unit.reset()
                    await self.commit_group([unit])
        except Exception as exc:  # noqa: BLE001 - every waiter gets an answer, the loop goes on
            logger.exception("group commit of %d sends failed", len(group))
            for unit in group:
                _settle(unit, exc)

    async def flush(self, group: list[_Unit], *, fresh: bool) -> None:
        """One transaction for `group` (see the module's docstring); answers its units once committed."""
        if fresh or not self.pooled:
            conn = await psycopg.AsyncConnection.connect(self.conninfo(), autocommit=True, connect_timeout=5)
            try:
                await _Transaction(self, group, conn, fresh=fresh).run()
            finally:
                await conn.close()
        else:
            pool = await self.get_pool()
            async with pool.connection() as conn:
                await _Transaction(self, group, conn, fresh=False).run()


def database_conninfo(application_name: str) -> str:
    """psycopg's connection string for Django's default database, naming the connection in pg_stat_activity."""
    from psycopg.conninfo import make_conninfo

    db = settings.DATABASES["default"]
    return make_conninfo(
        dbname=str(db["NAME"]),
        user=str(db["USER"] or "") or None,
        password=str(db["PASSWORD"] or "") or None,
        host=str(db["HOST"] or "") or None,
        port=str(db["PORT"] or "") or None,
        application_name=application_name,
    )


def _pool_errors() -> type[Exception]:
    from psycopg_pool import PoolTimeout

    return PoolTimeout


def _settle(unit: _Unit, outcome: SendAnswer | BaseException) -> None:
    if unit.future is None or unit.future.done():
        return
    if isinstance(outcome, BaseException):
        unit.future.set_exception(outcome)
    else:
        unit.future.set_result(outcome)


def _without_duplicate_claims(group: list[_Unit]) -> tuple[list[_Unit], list[_Unit]]:
    """Units whose keys another unit of the group already claims wait for the next group (and then replay)."""
    kept: list[_Unit] = []
    deferred: list[_Unit] = []
    keys: set[tuple[str, str]] = set()
    for unit in group:
        mine = {(c.endpoint, c.key) for c in unit.claims()}
        if mine & keys:
            deferred.append(unit)
        else:
            keys |= mine
            kept.append(unit)
    return kept, deferred


_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Engine] = weakref.WeakKeyDictionary()


def _engine() -> _Engine:
    loop = asyncio.get_running_loop()
    engine = _engines.get(loop)
    if engine is None:
        engine = _engines[loop] = _Engine()
    return engine


async def connection_pool() -> Any:
    """The engine's psycopg pool on this event loop (autocommit connections), for other writers off the hot
    path (delivery receipts)."""
    return await _engine().get_pool()


def replay_slot() -> asyncio.Semaphore:
    """Hold while a socket's replay uses the pool. The pool serves its waiters in turn, so a thousand sockets
    catching up together (the channel layer back, or another process's clients reconnecting here) queued every
    send behind their replays: the soak's sends were answered in up to 4 s after a Redis restart."""
    return _engine().replays


# --- one transaction -------------------------------------------------------------------------------

# Server-side prepared statements, per connection and organisation: PostgreSQL plans SEND_SQL (about
# 0.9 ms) once per connection and schema instead of on every transaction. Table names are qualified with
# the schema, so a plan never depends on search_path. Names by backend pid, least recently used last out.
_PREPARED_MAX = 256  # statements per connection (two per organisation)
_DEALLOCATE_ALL = ""  # marker: this connection's prepared statements are unknown
_prepared: dict[int, OrderedDict[str, None]] = {}
_SQL_PARAMS = {"%(items)s": "$1", "%(n)s": "$2", "%(pk_limit)s": "$3", "%(now)s": "$4"}
_TABLE = re.compile(r"\b(notifications_[a-z]+)\b")


def _prepared_on(conn: Any) -> OrderedDict[str, None]:
    pid = int(conn.info.backend_pid)
    found = _prepared.get(pid)
    if found is None:
        if len(_prepared) > 64:  # pids of closed connections
            _prepared.clear()
        found = _prepared[pid] = OrderedDict()
    return found


def _qualified(sql: str, schema_name: str) -> str:
    schema = '"' + schema_name.replace('"', '""') + '"'
    return _TABLE.sub(lambda m: f"{schema}.{m.group(1)}", sql)


def schema_qualified(sql: str, schema_name: str) -> str:
    """`sql` with every notifications table named in `schema_name` (no search_path reliance)."""
    return _qualified(sql, schema_name)


def _statement_sql(kind: str, schema_name: str) -> str:
    if kind == "ensure":
        return "(text[]) AS " + _qualified(SUBSCRIBERS_ENSURE_SQL.replace("%s", "$1"), schema_name)
    sql = SEND_SQL
    for placeholder, number in _SQL_PARAMS.items():
        sql = sql.replace(placeholder, number)
    return "(json, bigint, bigint, timestamptz) AS " + _qualified(sql, schema_name)


def _execute(names: OrderedDict[str, None], schema_name: str, kind: str, arguments: str) -> list[str]:
    """The statements that run `kind` for this schema on this connection: PREPARE first if needed.

    With settings.DATABASE_PREPARED_STATEMENTS off, the statement itself (schema-qualified, its arguments
    bound client-side like the rest of the query), prepared nowhere.
    """
    if not settings.DATABASE_PREPARED_STATEMENTS:
        sql = SUBSCRIBERS_ENSURE_SQL.replace("%s", arguments) if kind == "ensure" else SEND_SQL
        return [_qualified(sql, schema_name).strip()]
    statements = []
    if _DEALLOCATE_ALL in names:
        names.clear()
        statements.append("DEALLOCATE ALL")
    name = f"herald_{kind}_{hashlib.sha1(schema_name.encode()).hexdigest()[:16]}"  # noqa: S324 - a name
    if name in names:
        names.move_to_end(name)
    else:
        while len(names) >= _PREPARED_MAX:
            evicted, _ = names.popitem(last=False)
            statements.append(f"DEALLOCATE {evicted}")
        statements.append(f"PREPARE {name} {_statement_sql(kind, schema_name)}")
        names[name] = None
    statements.append(f"EXECUTE {name}({arguments})")
    return statements


class _Transaction:
    """One attempt at writing a group: every statement goes as one simple-protocol query per round trip
    (parameters bound client-side). On a loop shared with thousands of sockets every round trip is a wait
    in its ready queue: five of them made a send p50 16-26 ms at 200 sends/s (infra/bench/realtime.py)."""

    def __init__(self, engine: _Engine, group: list[_Unit], conn: Any, *, fresh: bool) -> None:
        self.engine = engine
        self.group = group
        self.conn = conn
        self.fresh = fresh
        first = group[0].sender
        self.organization_id = first.organization_id
        self.schema_name = first.schema_name
        self.schema = '"' + first.schema_name.replace('"', '""') + '"'
        self.names = _prepared_on(conn)
        self.open = False

    def _begin(self) -> list[str]:
        if self.open:
            return []
        self.open = True
        # The statements name their schema; search_path too, should anything ever not.
        return ["BEGIN", f"SET LOCAL search_path TO {self.schema}, public"]

    async def _query(self, statements: list[str], params: dict[str, Any]) -> Any:
        cursor = psycopg.AsyncClientCursor(self.conn)
        try:
            await cursor.execute(";\n".join(statements), params)
        except BaseException:
            # What this query prepared before it failed is unknown: start over on this connection.
            self.names.clear()
            self.names[_DEALLOCATE_ALL] = None
            raise
        return cursor

    async def run(self) -> None:
        group = self.group
        if self.fresh and await self._committed_already():
            return
        topics = sorted({i.draft.topic for u in group for i in u.items if i.draft.topic is not None})
        topic_pks: dict[str, int] = {}
        if topics:
            cursor = await self.conn.execute(
                f"SELECT key, id FROM {self.schema}.{T_TOPIC} WHERE key = ANY(%s)", [topics]
            )
            topic_pks = {row[0]: int(row[1]) for row in await cursor.fetchall()}
        claims = [c for u in group for c in u.claims()]
        granted: set[tuple[str, str]] = set()
        if claims:
            granted = await self._claim(claims)
        for unit in group:
            for item in unit.items:
                if item.outcome is None and item.draft.topic is not None and item.draft.topic not in topic_pks:
                    item.outcome = Problem("not-found", f"No topic {item.draft.topic!r}")
        await self._check_steps()
        ready = [
            (unit, item)
            for unit in group
            if unit.answer is None and unit.refused is None
            for item in unit.items
            if item.outcome is None
        ]
        touched = sorted({u.sender.api_key_id for u in group if u.sender.touch and u.sender.api_key_id is not None})
        statements: list[str] = []
        params: dict[str, Any] = {}
        sent: list[SentMessage] = []
        if ready or touched:
            statements = self._begin()
            external_ids = sorted({i for _, item in ready for i in (item.draft.to or [])})
            if external_ids:
                statements += _execute(self.names, self.schema_name, "ensure", "%(external_ids)s")
                params["external_ids"] = external_ids
            send_at = None
            drafts = [item.draft for _, item in ready]
            if ready:
                prepared = send_prepare(drafts, topic_pks, [item.message_id for _, item in ready])
                statements += _execute(self.names, self.schema_name, "send", "%(items)s, %(n)s, %(pk_limit)s, %(now)s")
                send_at = len(statements) - 1
                params.update(prepared.params)
            if touched:
                statements.append(
                    f"UPDATE public.{T_APIKEY} SET last_used_at = %(touched_at)s WHERE id = ANY(%(touched)s)"
                )
                params.update(touched_at=timezone.now(), touched=touched)
            if not claims:
                statements.append("COMMIT")
            cursor = await self._query(statements, params)
            if send_at is not None:
                for _ in range(send_at):
                    cursor.nextset()
                sent = send_results(prepared, drafts, topic_pks, await cursor.fetchall())
            for (_, item), message in zip(ready, sent, strict=True):
                item.outcome = message.result
        answers = {id(unit): _unit_answer(unit) for unit in group if unit.answer is None}
        if claims:
            await self._store(group, granted, answers)
        metrics.group_commit(len(group), accepted=len(sent))
        # Committed: answer every sender, then publish (a hint; clients recover by cursor) and tell the steps.
        for unit in group:
            _settle(unit, unit.answer or cast(Any, answers[id(unit)]))
        if any(message.result.recipients for message in sent):
            self.engine.spawn(_publish(self.organization_id, sent))
        if sent and steps:
            self.engine.spawn(_committed_steps(group))

    async def _claim(self, claims: list[IdempotencyClaim]) -> set[tuple[str, str]]:
        """Claim every key of the group (the transaction begins here); replays and refusals decided."""
        params = {"claims": claims_json(claims)}
        statements = [
            *self._begin(),
            _qualified(CLAIMS_SQL, self.schema_name),
            _qualified(CLAIMED_SQL, self.schema_name),
        ]
        cursor = await self._query(statements, params)
        cursor.nextset()
        cursor.nextset()
        granted = {(row[0], row[1]) for row in await cursor.fetchall()}
        cursor.nextset()
        rows = {(row[0], row[1]): (row[2], row[3], row[4]) for row in await cursor.fetchall()}

        def replay(claim: IdempotencyClaim) -> tuple[int, Any] | Problem:
            try:
                return idempotency_replay(claim, rows.get((claim.endpoint, claim.key)))
            except Problem as problem:
                return problem

        for unit in self.group:
            if unit.claim is not None and (unit.claim.endpoint, unit.claim.key) not in granted:
                stored = replay(unit.claim)
                if isinstance(stored, Problem):
                    unit.refused = stored
                else:
                    unit.answer = SendAnswer(stored[0], stored[1], replayed=True)
                continue
            for item in unit.items:
                claim = item.draft.idempotency
                if item.outcome is None and claim is not None and (claim.endpoint, claim.key) not in granted:
                    item.outcome = replay(claim)
        return granted

    async def _check_steps(self) -> None:
        if not steps:
            return
        for unit in self.group:
            drafts = tuple(i.draft for i in unit.items if i.outcome is None)
            if unit.answer is not None or unit.refused is not None or not drafts:
                continue
            check = SendCheck(
                organization_id=self.organization_id,
                schema_name=self.schema_name,
                api_key_id=unit.sender.api_key_id,
                drafts=drafts,
                batch=unit.batch,
                plan=unit.sender.plan,
            )
            try:
                for step in steps:
                    await step.check(check)
            except Problem as problem:
                unit.refused = problem

    async def _store(
        self, group: list[_Unit], granted: set[tuple[str, str]], answers: dict[int, SendAnswer | Problem]
    ) -> None:
        """Store the answers of granted keys, release the others; COMMIT."""
        stores: list[dict[str, Any]] = []
        releases: list[dict[str, str]] = []

        def keep(claim: IdempotencyClaim, status: int | None, body: Any) -> None:
            if (claim.endpoint, claim.key) not in granted:
                return
            entry = {"endpoint": claim.endpoint, "key": claim.key}
            if status is not None and 200 <= status < 300:
                stores.append({**entry, "status_code": status, "response": body})
            else:
                releases.append(entry)

        for unit in group:
            answer = answers.get(id(unit))
            if unit.claim is not None:
                if isinstance(answer, SendAnswer):
                    keep(unit.claim, answer.status, answer.body)
                else:
                    keep(unit.claim, None, None)
            for item in unit.items:
                if item.draft.idempotency is not None:
                    result = item.outcome if isinstance(item.outcome, SendResult) and unit.refused is None else None
                    keep(item.draft.idempotency, 202 if result else None, result.as_dict() if result else None)
        statements = [_qualified(STORES_SQL, self.schema_name), _qualified(RELEASES_SQL, self.schema_name), "COMMIT"]
        await self._query(statements, {"stores": json.dumps(stores), "releases": json.dumps(releases)})

    async def _committed_already(self) -> bool:
        """On a retry: True (and the units answered) when the first attempt committed after all.

        Its message ids are the retry's: if they are there, it committed. Plain sends get their answer from
        the rows; anything else (keys, replays, failed items) is answered 503 rather than guessed.
        """
        ids = [str(i.message_id) for u in self.group for i in u.items]
        cursor = await self.conn.execute(
            f"SELECT id, seq, recipient_count FROM {self.schema}.{T_MESSAGE} WHERE id = ANY(%s::uuid[])", [ids]
        )
        rows = {str(row[0]): (int(row[1]), int(row[2])) for row in await cursor.fetchall()}
        if not rows:
            return False
        unavailable = Problem(
            "service-unavailable",
            "The database connection was lost; the outcome is unknown. Retry later.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
        for unit in self.group:
            plain = unit.claim is None and all(i.draft.idempotency is None for i in unit.items)
            if plain and all(str(i.message_id) in rows for i in unit.items):
                for item in unit.items:
                    seq, recipients = rows[str(item.message_id)]
                    item.outcome = SendResult(id=str(item.message_id), seq=seq, recipients=recipients)
                answer = _unit_answer(unit)
                _settle(unit, answer if isinstance(answer, SendAnswer) else unavailable)
            else:
                _settle(unit, unavailable)
        return True


async def _publish(organization_id: int, sent: list[SentMessage]) -> None:
    from notifications.realtime import agroup_send_many

    await agroup_send_many(sent_message_events(organization_id, sent))


async def _committed_steps(group: list[_Unit]) -> None:
    for unit in group:
        pairs = [(i.draft, i.outcome) for i in unit.items if isinstance(i.outcome, SendResult)]
        if not pairs or unit.answer is not None:
            continue
        sent = SendCommitted(
            organization_id=unit.sender.organization_id,
            schema_name=unit.sender.schema_name,
            api_key_id=unit.sender.api_key_id,
            drafts=tuple(d for d, _ in pairs),
            results=tuple(cast(SendResult, r) for _, r in pairs),
            batch=unit.batch,
        )
        for step in steps:
            try:
                await step.committed(sent)
            except Exception:  # noqa: BLE001 - a step's failure never touches a committed send
                logger.exception("send step %r failed after commit", step)
