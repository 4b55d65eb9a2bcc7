"""Topics on the event loop: create or rename, and topic membership (add subscribers, remove one).

The server API's hot topic routes, as notifications.subscribing is for subscribers: the ASGI routes of
notifications.lean call these in the server and the Django views of the same routes (notifications.api) call
them through `sending.run_blocking`, so there is one implementation. Every statement runs on the send engine's
psycopg pool with the organisation's schema named in the SQL, never on Django's connection. Membership changes
are published after their commit, so the members' live sockets join or leave the topic's group.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from herald.problems import Problem
from notifications.groups import organization_group
from notifications.idempotency import IdempotencyClaim
from notifications.realtime import agroup_send, topic_membership_event
from notifications.services import T_SUBSCRIBER, T_TOPIC, T_TOPICSUB, subscribers_create_sql
from notifications.subscribing import Tenant, _idempotent, _json_ready, _pool, _query, _sql

_TOPIC_COLUMNS = "key, name, created_at"

# Create the topic or rename it (a name of null keeps the name), in one statement. A concurrent creation of the
# same key makes the insert do nothing and the statement answer no row: the caller runs it again.
TOPIC_UPSERT_SQL = f"""
WITH found AS (
    SELECT id, {_TOPIC_COLUMNS} FROM {T_TOPIC} WHERE key = %(key)s
),
renamed AS (
    UPDATE {T_TOPIC} t SET name = %(name)s FROM found
    WHERE t.id = found.id AND %(name)s IS NOT NULL AND t.name <> %(name)s
    RETURNING t.key, t.name, t.created_at
),
created AS (
    INSERT INTO {T_TOPIC} ({_TOPIC_COLUMNS})
    SELECT %(key)s, coalesce(%(name)s, ''), now() WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT (key) DO NOTHING
    RETURNING {_TOPIC_COLUMNS}
)
SELECT {_TOPIC_COLUMNS} FROM renamed
UNION ALL SELECT {_TOPIC_COLUMNS} FROM created
UNION ALL SELECT {_TOPIC_COLUMNS} FROM found WHERE NOT EXISTS (SELECT 1 FROM renamed)
"""

# Add subscribers to a topic, creating the ones named for the first time (notifications.services' one creation
# rule), in one statement; nothing is created when the topic is unknown. Answers the topic's id (null: unknown),
# the subscribers added, and whether every id named was found: a subscriber created concurrently by another
# transaction is not visible to this statement's snapshot, and the caller runs it again for the rest.
TOPIC_SUBSCRIBERS_ADD_SQL = f"""
WITH t AS (
    SELECT id FROM {T_TOPIC} WHERE key = %(key)s
),
ids AS (
    SELECT DISTINCT x FROM unnest(%(ids)s::text[]) AS x WHERE EXISTS (SELECT 1 FROM t)
),
created AS (
    {subscribers_create_sql(external_id="x", source="FROM ids ORDER BY x")}
    RETURNING id
),
members AS (
    SELECT id FROM {T_SUBSCRIBER} WHERE external_id IN (SELECT x FROM ids)
    UNION ALL SELECT id FROM created
),
added AS (
    INSERT INTO {T_TOPICSUB} (topic_id, subscriber_id, created_at)
    SELECT t.id, m.id, now() FROM t, members m ORDER BY m.id
    ON CONFLICT (topic_id, subscriber_id) DO NOTHING
    RETURNING subscriber_id
)
SELECT (SELECT id FROM t), ARRAY(SELECT subscriber_id FROM added),
    (SELECT count(*) FROM members) = (SELECT count(*) FROM ids)
"""

TOPIC_SUBSCRIBER_REMOVE_SQL = f"""
WITH t AS (
    SELECT id FROM {T_TOPIC} WHERE key = %(key)s
),
removed AS (
    DELETE FROM {T_TOPICSUB} ts USING {T_SUBSCRIBER} s, t
    WHERE ts.subscriber_id = s.id AND ts.topic_id = t.id AND s.external_id = %(external_id)s
    RETURNING ts.subscriber_id
)
SELECT (SELECT id FROM t), ARRAY(SELECT subscriber_id FROM removed)
"""


def _topic_unknown(key: str) -> Problem:
    return Problem("not-found", f"No topic {key!r}")


async def topic_upsert(*, tenant: Tenant, key: str, name: str | None) -> dict[str, Any]:
    """Create the topic or rename it (None: keep the name); the topic as the API answers it (JSON-ready)."""
    async with (await _pool()).connection() as conn:
        for _ in range(3):  # a key created concurrently by another request is renamed on the next round
            cursor = await _query(conn, _sql(tenant, TOPIC_UPSERT_SQL), {"key": key, "name": name})
            row = await cursor.fetchone()
            if row is not None:
                topic = {"key": row[0], "name": row[1], "created_at": row[2].astimezone(UTC)}
                return _json_ready(topic)  # type: ignore[no-any-return]
    raise RuntimeError(f"topic {key!r} neither found nor created")  # pragma: no cover


async def _publish_membership(tenant: Tenant, topic_pk: int, *, added: list[int], removed: list[int]) -> None:
    if added or removed:
        event = topic_membership_event(topic_pk=topic_pk, added=added, removed=removed)
        await agroup_send(organization_group(tenant.organization_id), event)


async def topic_subscribers_add(
    *, tenant: Tenant, key: str, external_ids: list[str], idempotency: IdempotencyClaim | None = None
) -> tuple[int, Any, bool]:
    """Add subscribers (created if new) to a topic: (200, {"added": the number newly added}, replayed);
    Problem(not-found) for an unknown topic. Published after commit, so members' sockets join the topic."""
    published: list[tuple[int, list[int]]] = []

    async def work() -> tuple[int, Any]:
        added: list[int] = []
        topic_pk: int | None = None
        for _ in range(3):
            params = {"key": key, "ids": sorted(set(external_ids))}
            cursor = await _query(conn, _sql(tenant, TOPIC_SUBSCRIBERS_ADD_SQL), params)
            topic_pk, pks, complete = await cursor.fetchone()
            if topic_pk is None:
                raise _topic_unknown(key)
            added += pks
            if complete:
                break
        assert topic_pk is not None
        published.append((int(topic_pk), added))
        return 200, {"added": len(added)}

    async with (await _pool()).connection() as conn:
        status, body, replayed = await _idempotent(conn, tenant, idempotency, work)
    for topic_pk, added in published:  # committed (a replay published nothing)
        await _publish_membership(tenant, topic_pk, added=added, removed=[])
    return status, body, replayed


async def topic_subscriber_remove(*, tenant: Tenant, key: str, external_id: str) -> None:
    """Remove one subscriber from a topic; Problem(not-found) for an unknown topic or a subscriber not in it."""
    async with (await _pool()).connection() as conn:
        cursor = await _query(conn, _sql(tenant, TOPIC_SUBSCRIBER_REMOVE_SQL), {"key": key, "external_id": external_id})
        topic_pk, removed = await cursor.fetchone()
    if topic_pk is None:
        raise _topic_unknown(key)
    if not removed:
        raise Problem("not-found", "That subscriber is not in this topic")
    await _publish_membership(tenant, int(topic_pk), added=[], removed=list(removed))
