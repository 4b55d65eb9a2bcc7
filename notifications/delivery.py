"""Database work of the real-time path, as sync functions that name their tenant.

Every function here takes the organisation and activates its schema itself
(`with tenant_context(organization):`), because the consumer calls them
through `database_sync_to_async`, which runs every consumer of a process on
one shared thread and connection: a schema set by one call could otherwise be
switched by another consumer before the next call (docs/architecture.md, tenancy rules).

These are the reads the socket needs (missed items since a cursor, unread
count) and tenant-activating wrappers over the inbox writes of
notifications.services, which publish each change to the subscriber's group
after commit, for the socket and the HTTP API alike.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone
from django_tenants.utils import tenant_context

from herald.problems import Problem
from notifications import selectors, services
from notifications.models import Message
from notifications.proofs import (
    SubscriberProof,
    proof_verify_with,
    signing_secrets_cached,
    signing_secrets_load,
    signing_secrets_remember,
    subscriber_proof_verify,
)
from notifications.schemas import inbox_item_payload
from notifications.selectors import UNREAD_COUNT_SQL
from notifications.services import (
    T_INBOX,
    T_MESSAGE,
    T_PREFERENCE,
    T_SEQUENCE,
    T_SUBSCRIBER,
    T_TOPICSUB,
    subscribers_create_sql,
)
from tenants.models import Organization, SigningSecret


@dataclass(frozen=True)
class SubscriberSession:
    """Who a socket speaks for, once its proof is verified, and where its inbox stands."""

    proof: SubscriberProof
    subscriber_pk: int
    topic_pks: tuple[int, ...]
    opted_out: frozenset[str]
    unread_count: int = 0
    latest_cursor: int = 0


@dataclass
class Replay:
    """What a (re)connecting subscriber missed: items in order, or a reset."""

    items: list[dict[str, Any]] = field(default_factory=list)
    reset_reason: str | None = None
    latest_cursor: int = 0
    unread_count: int = 0


# The subscriber (created if new: no sequence value is taken when it exists), its topics, opt-outs and
# unread count, and the organisation's latest sequence, in one statement: a reconnect storm authenticates
# thousands of sockets, each on the process's one database thread (docs/architecture.md, measured).
SESSION_SQL = f"""
WITH found AS (
    SELECT id FROM {T_SUBSCRIBER} WHERE external_id = %(external_id)s
),
created AS (
    {subscribers_create_sql(external_id="%(external_id)s", source="WHERE NOT EXISTS (SELECT 1 FROM found)")}
    RETURNING id
),
s AS (SELECT id FROM found UNION ALL SELECT id FROM created)
SELECT s.id,
    ARRAY(SELECT topic_id FROM {T_TOPICSUB} WHERE subscriber_id = s.id ORDER BY topic_id),
    ARRAY(SELECT category FROM {T_PREFERENCE} WHERE subscriber_id = s.id AND NOT enabled),
    ({UNREAD_COUNT_SQL.format(subscriber="s.id")}),
    (SELECT coalesce(max(seq), 0) FROM {T_MESSAGE})
FROM s LIMIT 1
"""


def _session_from_row(proof: SubscriberProof, row: Any) -> SubscriberSession:
    """The SubscriberSession of one row of the session statement (sync and async paths alike)."""
    subscriber_pk, topic_pks, opted_out, unread, latest = row
    return SubscriberSession(
        proof=proof,
        subscriber_pk=int(subscriber_pk),
        topic_pks=tuple(int(pk) for pk in topic_pks),
        opted_out=frozenset(opted_out),
        unread_count=int(unread),
        latest_cursor=int(latest),
    )


def subscriber_session_open(
    *, organization: Organization, subscriber_id: str, subscriber_hash: str | None, token: str | None
) -> SubscriberSession | None:
    """Verify the proof, then load the subscriber (created if new), its topics, opt-outs and unread count and
    the latest cursor; None if refused. Two statements in all."""
    proof = subscriber_proof_verify(
        organization_id=organization.pk, subscriber_id=subscriber_id, subscriber_hash=subscriber_hash, token=token
    )
    if proof is None:
        return None
    with tenant_context(organization), connection.cursor() as cursor:
        row = None
        for _ in range(2):  # a subscriber created by a concurrent first connection is seen on the second try
            cursor.execute(SESSION_SQL, {"external_id": subscriber_id})
            row = cursor.fetchone()
            if row is not None:
                break
    if row is None:  # pragma: no cover - the second statement sees the committed subscriber
        raise RuntimeError(f"subscriber {subscriber_id!r} neither found nor created")
    return _session_from_row(proof, row)


# The event loop's sessions (sockets' auth), many at once: the sockets of one organisation that authenticate
# together (a reconnect storm) share ONE statement, which also re-reads the organisation's live signing secrets
# and creates subscribers only for items whose verifying secret (secret_id) is still among them. With the
# secrets cached (notifications.proofs) an auth costs a share of one round trip. The row with ord 0 carries the
# live secrets; an item missing from the answer had its secret rotated out; a null id was created concurrently
# by another statement (committed by the next one).
SESSIONS_SQL = f"""
WITH live AS (
    SELECT id, secret, extract(epoch FROM expires_at) AS ends FROM public.{SigningSecret._meta.db_table}
    WHERE organization_id = %(organization_id)s AND (expires_at IS NULL OR expires_at > now())
),
x AS (SELECT * FROM json_to_recordset(%(items)s::json) AS x(ord int, external_id text, secret_id bigint)),
ok AS (SELECT x.* FROM x WHERE x.secret_id IN (SELECT id FROM live)),
created AS (
    {
    subscribers_create_sql(
        external_id="DISTINCT ok.external_id",
        source=f"FROM ok WHERE NOT EXISTS (SELECT 1 FROM {T_SUBSCRIBER} f WHERE f.external_id = ok.external_id)"
        " ORDER BY 1",
    )
}
    RETURNING id, external_id
),
s AS (
    SELECT ok.ord, coalesce(f.id, c.id) AS id FROM ok
    LEFT JOIN {T_SUBSCRIBER} f ON f.external_id = ok.external_id
    LEFT JOIN created c ON c.external_id = ok.external_id
)
SELECT s.ord, s.id,
    ARRAY(SELECT topic_id FROM {T_TOPICSUB} WHERE subscriber_id = s.id ORDER BY topic_id),
    ARRAY(SELECT category::text FROM {T_PREFERENCE} WHERE subscriber_id = s.id AND NOT enabled),
    ({UNREAD_COUNT_SQL.format(subscriber="s.id")}),
    (SELECT coalesce(max(seq), 0) FROM {T_MESSAGE}),
    NULL::json
FROM s
UNION ALL
SELECT 0, NULL, NULL, NULL, NULL, NULL,
    (SELECT coalesce(json_agg(json_build_array(id, secret, ends) ORDER BY id DESC), '[]'::json) FROM live)
"""
SESSIONS_MAX = 500  # sessions per statement


@dataclass
class _Want:
    subscriber_id: str
    secret_id: int
    future: asyncio.Future[tuple[Any, ...] | None]
    tries: int = 0


@dataclass
class _Sessions:
    """The sessions of one organisation waiting for the next statement (one statement at a time each)."""

    wants: list[_Want] = field(default_factory=list)
    running: bool = False


class _SessionOpener:
    """Per event loop: each organisation's queue of sessions to open, flushed one statement at a time."""

    def __init__(self) -> None:
        self.queues: dict[tuple[int, str], _Sessions] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def open(self, organization_id: int, schema_name: str, subscriber_id: str, secret_id: int) -> Any:
        want = _Want(subscriber_id, secret_id, asyncio.get_running_loop().create_future())
        self.enqueue(organization_id, schema_name, want)
        return await want.future

    def enqueue(self, organization_id: int, schema_name: str, want: _Want) -> None:
        queue = self.queues.setdefault((organization_id, schema_name), _Sessions())
        queue.wants.append(want)
        if not queue.running:
            queue.running = True
            task = asyncio.ensure_future(self.drain(organization_id, schema_name, queue))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def drain(self, organization_id: int, schema_name: str, queue: _Sessions) -> None:
        try:
            while queue.wants:
                batch, queue.wants = queue.wants[:SESSIONS_MAX], queue.wants[SESSIONS_MAX:]
                try:
                    await self.flush(organization_id, schema_name, batch)
                except BaseException as exc:
                    for want in batch:
                        if not want.future.done():
                            want.future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
        finally:
            queue.running = False

    async def flush(self, organization_id: int, schema_name: str, batch: list[_Want]) -> None:
        from notifications.sending import connection_pool, schema_qualified

        items = [{"ord": i + 1, "external_id": w.subscriber_id, "secret_id": w.secret_id} for i, w in enumerate(batch)]
        params = {"organization_id": organization_id, "items": json.dumps(items)}
        pool = await connection_pool()
        async with pool.connection() as conn:
            # Prepared per connection and organisation (its tables are named in it): planned once, not per batch.
            cursor = await conn.execute(schema_qualified(SESSIONS_SQL, schema_name), params, prepare=True)
            rows = await cursor.fetchall()
        by_ord = {int(row[0]): row for row in rows}
        live = by_ord.pop(0)[6]
        signing_secrets_remember(organization_id, [tuple(r) for r in live])
        for index, want in enumerate(batch, start=1):
            row = by_ord.get(index)
            if row is None:
                want.future.set_result(None)  # its secret was rotated out (in any process) and its grace is over
            elif row[1] is None and want.tries < 2:
                want.tries += 1  # created by a concurrent statement: seen by the next one
                self.enqueue(organization_id, schema_name, want)
            elif row[1] is None:  # pragma: no cover - the next statement sees the committed subscriber
                want.future.set_exception(RuntimeError(f"subscriber {want.subscriber_id!r} neither found nor created"))
            else:
                want.future.set_result(tuple(row[1:6]))


_openers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SessionOpener] = weakref.WeakKeyDictionary()


async def subscriber_session_open_async(
    *, organization_id: int, schema_name: str, subscriber_id: str, subscriber_hash: str | None, token: str | None
) -> SubscriberSession | None:
    """subscriber_session_open on the event loop (the send engine's psycopg pool, the schema named in the SQL,
    never the shared database_sync_to_async connection): a share of one statement with the organisation's
    secrets cached, one round trip more on a cache miss or a proof the cache cannot verify; None if refused."""
    given: dict[str, Any] = {"subscriber_id": subscriber_id, "subscriber_hash": subscriber_hash, "token": token}
    found = proof_verify_with(signing_secrets_cached(organization_id) or (), **given)
    if found is None:
        from notifications.sending import connection_pool

        async with (await connection_pool()).connection() as conn:
            fresh = await signing_secrets_load(conn, organization_id)
        found = proof_verify_with(fresh, **given)
        if found is None:
            return None
    proof, secret = found
    loop = asyncio.get_running_loop()
    opener = _openers.get(loop)
    if opener is None:
        opener = _openers[loop] = _SessionOpener()
    row = await opener.open(organization_id, schema_name, subscriber_id, secret.id)
    if row is None:
        return None
    return _session_from_row(proof, row)


async def subscriber_proof_verify_async(
    *, organization_id: int, subscriber_id: str, subscriber_hash: str | None, token: str | None
) -> SubscriberProof | None:
    """A socket's fresh proof (re-auth) checked against the live secrets read now (one round trip), on the loop."""
    from notifications.sending import connection_pool

    pool = await connection_pool()
    async with pool.connection() as conn:
        secrets = await signing_secrets_load(conn, organization_id)
    found = proof_verify_with(secrets, subscriber_id=subscriber_id, subscriber_hash=subscriber_hash, token=token)
    return found[0] if found is not None else None


def unread_count(*, organization: Organization, subscriber_pk: int) -> int:
    """The subscriber's unread, unarchived items."""
    with tenant_context(organization):
        return selectors.unread_count(subscriber_pk=subscriber_pk)


def latest_cursor(*, organization: Organization) -> int:
    """The organisation's highest committed message sequence (0 before the first message)."""
    with tenant_context(organization):
        return int(Message.objects.aggregate(latest=Max("seq"))["latest"] or 0)


# A replay on the event loop: the organisation's bounds, the subscriber's unread count and the first missed
# message's time in one statement; the missed items (at most the replay limit + 1) in a second only when needed.
MISSED_BOUNDS_SQL = f"""
SELECT (SELECT max(seq) FROM {T_MESSAGE}), (SELECT min(seq) FROM {T_MESSAGE}),
    ({UNREAD_COUNT_SQL.format(subscriber="%(subscriber_pk)s")}),
    (SELECT created_at FROM {T_MESSAGE} WHERE seq > %(cursor)s ORDER BY seq LIMIT 1),
    (SELECT value FROM {T_SEQUENCE} LIMIT 1)
"""
MISSED_ITEMS_SQL = f"""
SELECT m.id, m.seq, m.title, m.body, m.action_url, m.category, m.data, m.created_at,
    i.read_at, i.seen_at, i.archived_at
FROM {T_INBOX} i JOIN {T_MESSAGE} m ON m.id = i.message_id
WHERE i.subscriber_id = %(subscriber_pk)s AND i.seq > %(cursor)s ORDER BY i.seq LIMIT %(limit)s
"""


def _utc(value: Any) -> Any:
    return value.astimezone(UTC) if value is not None else None


async def missed_since_async(*, organization_id: int, schema_name: str, subscriber_pk: int, cursor: int) -> Replay:
    """The subscriber's items after `cursor` in sequence order, or a reset when they cannot all be replayed; on
    the event loop (the send engine's pool, the schema named in the SQL).

    Reset reasons: `unknown_cursor` (ahead of the organisation's sequence), `expired` (messages after the cursor
    are past the retention window or already purged), `too_many` (more than HERALD_WS_REPLAY_LIMIT items).
    """
    from types import SimpleNamespace

    from notifications.sending import connection_pool, replay_slot, schema_qualified

    limit = int(settings.HERALD_WS_REPLAY_LIMIT)
    params = {"subscriber_pk": subscriber_pk, "cursor": cursor, "limit": limit + 1}
    async with replay_slot(), (await connection_pool()).connection() as conn:
        found = await conn.execute(schema_qualified(MISSED_BOUNDS_SQL, schema_name), params, prepare=True)
        latest, oldest, unread, first_missed, handed_out = await found.fetchone()
        replay = Replay(latest_cursor=int(latest or 0), unread_count=int(unread))
        if latest is None and 0 < cursor <= int(handed_out or 0):
            # Retention deleted every message: a cursor the sequence has handed out is expired, not unknown.
            replay.reset_reason = "expired"
            return replay
        if cursor > replay.latest_cursor:
            replay.reset_reason = "unknown_cursor"
            return replay
        if cursor == replay.latest_cursor:
            return replay
        retention_start = timezone.now() - timedelta(days=int(settings.HERALD_INBOX_RETENTION_DAYS))
        if (oldest is not None and oldest > cursor + 1) or (
            first_missed is not None and first_missed < retention_start
        ):
            replay.reset_reason = "expired"
            return replay
        found = await conn.execute(schema_qualified(MISSED_ITEMS_SQL, schema_name), params, prepare=True)
        rows = await found.fetchall()
    if len(rows) > limit:
        replay.reset_reason = "too_many"
        return replay
    replay.items = [
        inbox_item_payload(
            cast(
                Message,
                SimpleNamespace(
                    id=row[0], seq=row[1], title=row[2], body=row[3], action_url=row[4], category=row[5], data=row[6],
                    created_at=_utc(row[7]),
                ),
            ),
            read_at=_utc(row[8]),
            seen_at=_utc(row[9]),
            archived_at=_utc(row[10]),
        )
        for row in rows
    ]  # fmt: skip
    return replay


def inbox_item_mark(*, organization: Organization, subscriber_pk: int, message_id: str, action: str) -> bool:
    """Mark one item `read`, `unread` or `archive` (services publishes the change); False if no such item."""
    with tenant_context(organization):
        try:
            services.inbox_item_mark(
                organization_id=organization.pk, subscriber_pk=subscriber_pk, message_id=message_id, action=action
            )
        except Problem:
            return False
    return True


def inbox_read_all(*, organization: Organization, subscriber_pk: int) -> int:
    """Mark every unread item read (services publishes the change); how many were marked."""
    with tenant_context(organization):
        return services.inbox_read_all(organization_id=organization.pk, subscriber_pk=subscriber_pk)
