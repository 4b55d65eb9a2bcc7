"""A subscriber's inbox on the event loop: the page, the unread count, marking one item and reading all.

The widget's inbox routes, as notifications.subscribing is for subscribers: the Django views of the widget API
(notifications.api) call these through `sending.run_blocking`, and the front's ASGI routes can call them as they
are. Every statement runs on the send engine's psycopg pool with the organisation's schema named in the SQL, and
the subscriber is named by its id inside each statement, so each call is one round trip. Changes are published
to the subscriber's sockets and tabs after their commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from herald.problems import Problem
from notifications.groups import subscriber_group
from notifications.realtime import agroup_send, inbox_read_all_event, inbox_update_event
from notifications.schemas import MessageFields, inbox_item_payload
from notifications.selectors import UNREAD_COUNT_SQL, Page, _page, cursor_decode, message_id_parse
from notifications.services import T_INBOX, T_MESSAGE, T_SUBSCRIBER
from notifications.subscribing import Tenant, _pool, _query, _sql

_SUBSCRIBER = f"(SELECT id FROM {T_SUBSCRIBER} WHERE external_id = %(subscriber)s)"
_UNREAD = UNREAD_COUNT_SQL.format(subscriber=_SUBSCRIBER)
_ITEM_COLUMNS = (
    "m.id, m.seq, m.title, m.body, m.action_url, m.category, m.data, m.created_at,"
    " i.read_at, i.seen_at, i.archived_at, i.seq, i.subscriber_id"
)
_ITEMS = f"{T_INBOX} i JOIN {T_MESSAGE} m ON m.id = i.message_id"

# What each action changes, and when it changes anything (as services.inbox_item_mark did with the ORM).
_MARKS = {
    "read": ("read_at = %(now)s, seen_at = coalesce(seen_at, %(now)s)", "read_at IS NULL"),
    "unread": ("read_at = NULL", "read_at IS NOT NULL"),
    "archive": ("archived_at = %(now)s", "archived_at IS NULL"),
    "unarchive": ("archived_at = NULL", "archived_at IS NOT NULL"),
}


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _item_out(row: Any) -> dict[str, Any]:
    message = MessageFields(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7].astimezone(UTC))
    return inbox_item_payload(message, read_at=_utc(row[8]), seen_at=_utc(row[9]), archived_at=_utc(row[10]))


async def inbox_page(
    *,
    tenant: Tenant,
    subscriber_id: str,
    cursor: str | None,
    limit: int,
    read: bool | None = None,
    archived: bool | None = False,
    category: str | None = None,
) -> Page[dict[str, Any]]:
    """A subscriber's inbox, newest first, as the API answers its items (one round trip; empty if unknown)."""
    before = cursor_decode("inbox", cursor)
    where = [f"i.subscriber_id = {_SUBSCRIBER}"]
    params: dict[str, Any] = {"subscriber": subscriber_id, "n": limit + 1}
    if before is not None:
        where.append("i.seq < %(before)s")
        params["before"] = before
    if read is not None:
        where.append("i.read_at IS NOT NULL" if read else "i.read_at IS NULL")
    if archived is not None:
        where.append("i.archived_at IS NOT NULL" if archived else "i.archived_at IS NULL")
    if category:
        where.append("i.category = %(category)s")
        params["category"] = category
    sql = f"SELECT {_ITEM_COLUMNS} FROM {_ITEMS} WHERE {' AND '.join(where)} ORDER BY i.seq DESC LIMIT %(n)s"
    async with (await _pool()).connection() as conn:
        rows = await (await _query(conn, _sql(tenant, sql), params)).fetchall()
    page = _page(list(rows), limit, "inbox", lambda row: row[11])
    return Page(items=[_item_out(row) for row in page.items], next_cursor=page.next_cursor, has_more=page.has_more)


async def unread_count(*, tenant: Tenant, subscriber_id: str) -> int:
    """Unread, unarchived items of a subscriber (the unread rule of notifications.selectors); 0 if unknown."""
    async with (await _pool()).connection() as conn:
        row = await (await _query(conn, _sql(tenant, _UNREAD), {"subscriber": subscriber_id})).fetchone()
    return int(row[0]) if row is not None else 0


async def inbox_item_mark(*, tenant: Tenant, subscriber_id: str, message_id: str, action: str) -> dict[str, Any]:
    """Mark one inbox item `read`, `unread`, `archive` or `unarchive`; the item as the API answers it. Problem
    (not-found) when the subscriber or the item is unknown. A change is published to the subscriber's sockets."""
    if action not in _MARKS:
        raise ValueError(f"unknown inbox action {action!r}")
    message_uuid = message_id_parse(message_id)
    if message_uuid is None:
        raise Problem("not-found", "No such notification in this inbox")
    changes, when = _MARKS[action]
    this_item = f"i.subscriber_id = {_SUBSCRIBER} AND i.message_id = %(message)s"
    statements = [
        "BEGIN",
        f"UPDATE {T_INBOX} i SET {changes} WHERE {this_item} AND i.{when} RETURNING i.id",
        f"SELECT {_ITEM_COLUMNS}, ({_UNREAD}) FROM {_ITEMS} WHERE {this_item}",
        "COMMIT",
    ]
    params = {"subscriber": subscriber_id, "message": str(message_uuid), "now": datetime.now(tz=UTC)}
    async with (await _pool()).connection() as conn:
        try:
            cursor = await _query(conn, [_sql(tenant, statement) for statement in statements], params)
            cursor.nextset()
            changed = bool(await cursor.fetchall())
            cursor.nextset()
            row = await cursor.fetchone()
        except BaseException:
            if not conn.closed:
                await conn.rollback()
            raise
    if row is None:
        raise Problem("not-found", "No such notification in this inbox")
    item = _item_out(row)
    if changed:
        event = inbox_update_event(
            message_id=item["id"],
            read_at=_utc(row[8]),
            seen_at=_utc(row[9]),
            archived_at=_utc(row[10]),
            unread_count=int(row[13]),
        )
        await agroup_send(subscriber_group(tenant.organization_id, int(row[12])), event)
    return item


async def inbox_read_all(*, tenant: Tenant, subscriber_id: str) -> dict[str, int]:
    """Mark every unread item read: {"marked", "unread_count"} (0 and 0 for an unknown subscriber). Publishes one
    `all_read` update when any was marked."""
    now = datetime.now(tz=UTC)
    statements = [
        "BEGIN",
        f"""WITH marked AS (
                UPDATE {T_INBOX} SET read_at = %(now)s, seen_at = coalesce(seen_at, %(now)s)
                WHERE subscriber_id = {_SUBSCRIBER} AND read_at IS NULL RETURNING 1
            )
            SELECT {_SUBSCRIBER}, (SELECT count(*) FROM marked)""",
        _UNREAD,
        "COMMIT",
    ]
    async with (await _pool()).connection() as conn:
        try:
            cursor = await _query(
                conn, [_sql(tenant, statement) for statement in statements], {"subscriber": subscriber_id, "now": now}
            )
            cursor.nextset()
            subscriber_pk, marked = await cursor.fetchone()
            cursor.nextset()
            (unread,) = await cursor.fetchone()
        except BaseException:
            if not conn.closed:
                await conn.rollback()
            raise
    if marked:
        await agroup_send(
            subscriber_group(tenant.organization_id, int(subscriber_pk)), inbox_read_all_event(read_at=now)
        )
    return {"marked": int(marked), "unread_count": int(unread)}
