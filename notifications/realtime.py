"""Publishing to live sockets: always after commit, never the source of truth.

The database holds every message; what is published here is a hint that lets
open sockets show it at once. A publish that fails loses nothing: clients
recover by cursor on their next connect.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from notifications.groups import organization_group, subscriber_group, topic_group

logger = logging.getLogger(__name__)


def _group_send(group: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:  # noqa: BLE001 - the database already holds it; clients catch up by cursor
        logger.warning("publish to %s failed", group, exc_info=True)


def publish_message_after_commit(
    *,
    organization_id: int,
    notification: dict[str, Any],
    audience: str,
    topic_pk: int | None = None,
    subscriber_pks: list[int] | None = None,
) -> None:
    """After commit, tell live sockets about a new message: once per audience.

    `notification` is the inbox item payload (notifications.schemas.inbox_item_payload)
    as every recipient first sees it.
    """
    event = {"type": "notification.new", "notification": notification}

    def publish() -> None:
        if audience == "broadcast":
            _group_send(organization_group(organization_id), event)
        elif audience == "topic" and topic_pk is not None:
            _group_send(topic_group(organization_id, topic_pk), event)
        else:
            for pk in subscriber_pks or []:
                _group_send(subscriber_group(organization_id, pk), event)

    transaction.on_commit(publish)


def publish_to_subscriber_after_commit(*, organization_id: int, subscriber_pk: int, event: dict[str, Any]) -> None:
    """After commit, send `event` (an `update`, `unread_count`, topic or preference change) to one subscriber."""
    transaction.on_commit(lambda: _group_send(subscriber_group(organization_id, subscriber_pk), event))
