"""Shapes shared by the HTTP API and the real-time protocol."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from notifications.models import InboxItem, Message


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def inbox_item_payload(
    message: Message,
    *,
    read_at: datetime | None = None,
    seen_at: datetime | None = None,
    archived_at: datetime | None = None,
) -> dict[str, Any]:
    """An inbox item as clients see it; its id is its message's id."""
    return {
        "id": str(message.id),
        "seq": message.seq,
        "title": message.title,
        "body": message.body,
        "action_url": message.action_url,
        "category": message.category,
        "data": message.data,
        "created_at": _iso(message.created_at),
        "read": read_at is not None,
        "seen": seen_at is not None,
        "archived": archived_at is not None,
        "read_at": _iso(read_at),
        "seen_at": _iso(seen_at),
        "archived_at": _iso(archived_at),
    }


def inbox_item_dict(item: InboxItem) -> dict[str, Any]:
    """The payload of a stored inbox item (its message must be loaded)."""
    return inbox_item_payload(item.message, read_at=item.read_at, seen_at=item.seen_at, archived_at=item.archived_at)
