"""Subscribers on the event loop: upsert (one or a bulk import), get, erase, and subscriber tokens.

The server API's hot subscriber routes (docs/architecture.md): the ASGI routes of notifications.lean call these
in the server, the Django views of the same routes (notifications.api) call them too, through
`sending.run_blocking`, so there is one implementation. Every statement runs on the send engine's psycopg pool
(autocommit connections) with the organisation's schema named in the SQL (`sending.schema_qualified`), never
on Django's connection and never relying on search_path.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncClientCursor

from herald.problems import Problem
from notifications.groups import subscriber_group
from notifications.idempotency import CLAIMED_SQL, CLAIMS_SQL, STORES_SQL, IdempotencyClaim, claims_json
from notifications.idempotency import idempotency_replay as _replay
from notifications.proofs import SIGNING_SECRETS_ROWS_SQL, subscriber_token
from notifications.realtime import agroup_send, subscriber_erased_event
from notifications.services import T_INBOX, T_PREFERENCE, T_SUBSCRIBER, T_TOPICSUB

BULK_MAX = 1000  # subscribers per POST /v1/subscribers/bulk

_COLUMNS = "external_id, name, email, locale, data, created_at, updated_at"

# Upsert many subscribers in one statement: existing ones get the fields given (null: keep), new ones are created
# with empty fields where none is given. Update first, insert the rest: a concurrent creation of the same id makes
# its insert do nothing, and the caller runs the statement again for those ids (they are then updated).
UPSERT_SQL = f"""
WITH x AS (
    SELECT * FROM json_to_recordset(%(items)s::json)
        AS x(external_id text, name text, email text, locale text, data jsonb)
),
updated AS (
    UPDATE {T_SUBSCRIBER} s SET
        name = coalesce(x.name, s.name),
        email = coalesce(x.email, s.email),
        locale = coalesce(x.locale, s.locale),
        data = coalesce(x.data, s.data),
        updated_at = CASE WHEN x.name IS NULL AND x.email IS NULL AND x.locale IS NULL AND x.data IS NULL
                          THEN s.updated_at ELSE now() END
    FROM x WHERE s.external_id = x.external_id
    RETURNING s.{_COLUMNS.replace(", ", ", s.")}
),
inserted AS (
    INSERT INTO {T_SUBSCRIBER} ({_COLUMNS})
    SELECT x.external_id, coalesce(x.name, ''), coalesce(x.email, ''), coalesce(x.locale, ''),
           coalesce(x.data, '{{}}'::jsonb), now(), now()
    FROM x WHERE NOT EXISTS (SELECT 1 FROM updated u WHERE u.external_id = x.external_id)
    ORDER BY x.external_id
    ON CONFLICT (external_id) DO NOTHING
    RETURNING {_COLUMNS}
)
SELECT {_COLUMNS}, false FROM updated
UNION ALL
SELECT {_COLUMNS}, true FROM inserted
"""

GET_SQL = f"SELECT {_COLUMNS} FROM {T_SUBSCRIBER} WHERE external_id = %(external_id)s"

# Inbox items have no foreign key to the subscriber: lock out inserts first, so a send in flight finishes before,
# and a send after it no longer sees the subscriber (as notifications.services.subscriber_delete did).
DELETE_STATEMENTS = [
    "BEGIN",
    f"LOCK TABLE {T_INBOX} IN SHARE ROW EXCLUSIVE MODE",
    *(
        f"DELETE FROM {table} WHERE subscriber_id IN "
        f"(SELECT id FROM {T_SUBSCRIBER} WHERE external_id = %(external_id)s)"
        for table in (T_INBOX, T_TOPICSUB, T_PREFERENCE)
    ),
    f"DELETE FROM {T_SUBSCRIBER} WHERE external_id = %(external_id)s RETURNING id",
    "COMMIT",
]

TOKEN_SQL = f"""
SELECT EXISTS (SELECT 1 FROM {T_SUBSCRIBER} WHERE external_id = %(external_id)s),
    ARRAY(SELECT secret FROM ({SIGNING_SECRETS_ROWS_SQL.replace("%s", "%(organization_id)s")}) AS live)
"""


@dataclass(frozen=True)
class Tenant:
    """Whose subscribers: the organisation's id (signing secrets) and schema (tables)."""

    organization_id: int
    schema_name: str


def _sql(tenant: Tenant, sql: str) -> str:
    from notifications.sending import schema_qualified

    return schema_qualified(sql, tenant.schema_name)


async def _pool() -> Any:
    from notifications.sending import connection_pool

    return await connection_pool()


async def _query(conn: Any, statements: list[str] | str, params: dict[str, Any]) -> Any:
    """One simple-protocol round trip (parameters bound client-side); the cursor on its first result."""
    cursor = AsyncClientCursor(conn)
    await cursor.execute(";\n".join(statements) if isinstance(statements, list) else statements, params)
    return cursor


def subscriber_row_out(row: Any) -> dict[str, Any]:
    """A subscriber row (external_id, name, email, locale, data, created_at, updated_at) as the API answers it."""
    return {
        "id": row[0],
        "name": row[1],
        "email": row[2],
        "locale": row[3],
        "data": row[4],
        "created_at": row[5].astimezone(UTC),
        "updated_at": row[6].astimezone(UTC),
    }


async def _upsert_rows(conn: Any, tenant: Tenant, items: list[dict[str, Any]]) -> dict[str, tuple[Any, bool]]:
    """Upsert `items` (one per distinct id); their rows and whether each was created, by id."""
    rows: dict[str, tuple[Any, bool]] = {}
    pending = items
    for _ in range(3):  # ids created concurrently by another request are updated on the next round
        cursor = await _query(conn, _sql(tenant, UPSERT_SQL), {"items": json.dumps(pending)})
        for row in await cursor.fetchall():
            rows[row[0]] = (row[:7], bool(row[7]))
        pending = [item for item in pending if item["external_id"] not in rows]
        if not pending:
            return rows
    raise RuntimeError(f"{len(pending)} subscribers neither updated nor created")  # pragma: no cover


def _item(external_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "external_id": external_id,
        **{name: fields.get(name) for name in ("name", "email", "locale", "data")},
    }


UPSERTS_MAX = 500  # single upserts coalesced into one statement


@dataclass
class _Upsert:
    item: dict[str, Any]
    future: asyncio.Future[Any]


@dataclass
class _Upserts:
    wants: list[_Upsert] = field(default_factory=list)
    running: bool = False


class _UpsertGroups:
    """Per event loop: concurrent single upserts of one organisation go as ONE statement (and one commit): while
    one statement runs, the next requests queue (group commit, as the send engine does). An id already in the
    statement being built waits for the next one, so each request's answer is its own write's."""

    def __init__(self) -> None:
        self.queues: dict[Tenant, _Upserts] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def upsert(self, tenant: Tenant, item: dict[str, Any]) -> Any:
        want = _Upsert(item, asyncio.get_running_loop().create_future())
        queue = self.queues.setdefault(tenant, _Upserts())
        queue.wants.append(want)
        if not queue.running:
            queue.running = True
            task = asyncio.ensure_future(self.drain(tenant, queue))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await want.future

    async def drain(self, tenant: Tenant, queue: _Upserts) -> None:
        try:
            while queue.wants:
                batch: list[_Upsert] = []
                ids: set[str] = set()
                rest: list[_Upsert] = []
                for want in queue.wants:
                    if len(batch) < UPSERTS_MAX and want.item["external_id"] not in ids:
                        batch.append(want)
                        ids.add(want.item["external_id"])
                    else:
                        rest.append(want)
                queue.wants = rest
                try:
                    async with (await _pool()).connection() as conn:
                        rows = await _upsert_rows(conn, tenant, [w.item for w in batch])
                except BaseException as exc:
                    for want in batch:
                        if not want.future.done():
                            want.future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for want in batch:
                    if not want.future.done():
                        want.future.set_result(rows[want.item["external_id"]][0])
        finally:
            queue.running = False


_upsert_groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _UpsertGroups] = weakref.WeakKeyDictionary()


async def subscriber_upsert(*, tenant: Tenant, external_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Create the subscriber or update the fields given (None: keep); the subscriber as the API answers it."""
    loop = asyncio.get_running_loop()
    groups = _upsert_groups.get(loop)
    if groups is None:
        groups = _upsert_groups[loop] = _UpsertGroups()
    return subscriber_row_out(await groups.upsert(tenant, _item(external_id, fields)))


async def subscriber_get(*, tenant: Tenant, external_id: str) -> dict[str, Any] | None:
    """The subscriber as the API answers it, or None."""
    async with (await _pool()).connection() as conn:
        cursor = await _query(conn, _sql(tenant, GET_SQL), {"external_id": external_id})
        row = await cursor.fetchone()
    return subscriber_row_out(row) if row is not None else None


async def subscriber_delete(*, tenant: Tenant, external_id: str) -> bool:
    """Erase a subscriber with its inbox, topic memberships and preferences; False if unknown."""
    async with (await _pool()).connection() as conn:
        statements = [_sql(tenant, statement) for statement in DELETE_STATEMENTS]
        try:
            cursor = await _query(conn, statements, {"external_id": external_id})
        except BaseException:
            if not conn.closed:
                await conn.rollback()
            raise
        for _ in range(len(DELETE_STATEMENTS) - 2):
            cursor.nextset()
        erased = [int(row[0]) for row in await cursor.fetchall()]
    # Committed: its live sockets (any process) close, so they stop streaming the organisation's broadcasts.
    for subscriber_pk in erased:
        await agroup_send(subscriber_group(tenant.organization_id, subscriber_pk), subscriber_erased_event())
    return bool(erased)


async def _idempotent(
    conn: Any, tenant: Tenant, claim: IdempotencyClaim | None, work: Callable[[], Awaitable[tuple[int, Any]]]
) -> tuple[int, Any, bool]:
    """Run `work` once per Idempotency-Key (claim, work, store the answer, one transaction): (status, body,
    replayed). A repeat gets the stored first answer, another request with the key a 422; a refusal stores
    nothing. Without a claim, `work` alone."""
    if claim is None:
        status, body = await work()
        return status, body, False
    params = {"claims": claims_json([claim])}
    try:
        cursor = await _query(conn, ["BEGIN", _sql(tenant, CLAIMS_SQL), _sql(tenant, CLAIMED_SQL)], params)
        cursor.nextset()
        granted = bool(await cursor.fetchall())
        cursor.nextset()
        row = await cursor.fetchone()
        if not granted:
            await _query(conn, "COMMIT", {})
            stored = _replay(claim, (row[2], row[3], row[4]) if row else None)
            return stored[0], stored[1], True
        status, body = await work()
        stores = [{"endpoint": claim.endpoint, "key": claim.key, "status_code": status, "response": body}]
        await _query(conn, [_sql(tenant, STORES_SQL), "COMMIT"], {"stores": json.dumps(stores, default=str)})
        return status, body, False
    except BaseException:
        if not conn.closed:
            await conn.rollback()
        raise


def _json_ready(value: Any) -> Any:
    """An answer as it is stored for replay and sent: datetimes as Django's JSON encoder writes them."""
    from django.core.serializers.json import DjangoJSONEncoder

    encoder = DjangoJSONEncoder()
    if isinstance(value, dict):
        return {name: _json_ready(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    if isinstance(value, datetime):
        return encoder.default(value)
    return value


async def subscribers_import(
    *, tenant: Tenant, subscribers: list[tuple[str, dict[str, Any]]], idempotency: IdempotencyClaim | None = None
) -> tuple[int, Any, bool]:
    """Upsert up to BULK_MAX subscribers ((id, fields) each) in one statement: (200, {"results": one per item,
    in order}, replayed). An id given twice takes the fields of both, the later ones winning."""
    merged: dict[str, dict[str, Any]] = {}
    for external_id, fields in subscribers:
        merged.setdefault(external_id, {}).update({k: v for k, v in fields.items() if v is not None})

    async def work() -> tuple[int, Any]:
        rows = await _upsert_rows(conn, tenant, [_item(i, f) for i, f in sorted(merged.items())])
        seen: set[str] = set()
        results = []
        for index, (external_id, _) in enumerate(subscribers):
            created = rows[external_id][1] and external_id not in seen
            seen.add(external_id)
            results.append({"index": index, "status": 201 if created else 200, "id": external_id, "created": created})
        return 200, {"results": results}

    async with (await _pool()).connection() as conn:
        return await _idempotent(conn, tenant, idempotency, work)


async def subscriber_token_issue(
    *, tenant: Tenant, external_id: str, expires_in: int, idempotency: IdempotencyClaim | None = None
) -> tuple[int, Any, bool]:
    """A short-lived HS256 JWT for the widget signed with the newest live signing secret: (200, body, replayed);
    Problem(not-found) for an unknown subscriber."""

    async def work() -> tuple[int, Any]:
        params = {"external_id": external_id, "organization_id": tenant.organization_id}
        cursor = await _query(conn, _sql(tenant, TOKEN_SQL), params)
        exists, secrets = await cursor.fetchone()
        if not exists:
            raise Problem("not-found", "No such subscriber")
        if not secrets:  # pragma: no cover - every organisation is created with one
            raise Problem("internal-error", "The organisation has no signing secret")
        expires_at = datetime.now(tz=UTC).replace(microsecond=0) + timedelta(seconds=expires_in)
        body = {
            "token": subscriber_token(secrets[0], external_id, expires_at),
            "subscriber_id": external_id,
            "expires_at": expires_at,
        }
        return 200, _json_ready(body)

    async with (await _pool()).connection() as conn:
        return await _idempotent(conn, tenant, idempotency, work)


def subscriber_out_json(subscriber: dict[str, Any]) -> dict[str, Any]:
    """subscriber_row_out as JSON-ready values (for ASGI routes, which encode with plain json)."""
    return _json_ready(subscriber)  # type: ignore[no-any-return]
