"""Writes on the active organisation's subscribers, topics, messages and inbox items.

Every function runs in the schema the caller activated (the API pipeline
activates the request's organisation) and takes `organization_id` where it
publishes, so the events it schedules name the right tenant's groups. Anything
that leaves the process runs after commit (notifications.realtime).

Sending is not here: every send goes through the send engine
(notifications.sending), which alone writes messages and inbox items.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from herald.problems import Problem
from notifications.models import (
    InboxItem,
    Message,
    MessageSequence,
    Preference,
    Subscriber,
    Topic,
    TopicSubscription,
)
from notifications.realtime import (
    inbox_read_all_event,
    inbox_update_event,
    preferences_changed_event,
    publish_to_subscriber_after_commit,
    publish_topic_membership_after_commit,
    subscriber_erased_event,
)
from notifications.selectors import message_id_parse, unread_count

logger = logging.getLogger(__name__)

T_SUBSCRIBER = Subscriber._meta.db_table
T_TOPIC = Topic._meta.db_table
T_TOPICSUB = TopicSubscription._meta.db_table
T_MESSAGE = Message._meta.db_table
T_INBOX = InboxItem._meta.db_table
T_PREFERENCE = Preference._meta.db_table
T_SEQUENCE = MessageSequence._meta.db_table


# --- subscribers --------------------------------------------------------------------


@transaction.atomic
def subscriber_upsert(*, external_id: str, fields: dict[str, Any]) -> tuple[Subscriber, bool]:
    """Create the subscriber or update the given fields; (subscriber, created)."""
    subscriber, created = Subscriber.objects.select_for_update().get_or_create(external_id=external_id, defaults=fields)
    if not created and fields:
        for name, value in fields.items():
            setattr(subscriber, name, value)
        subscriber.save(update_fields=[*fields, "updated_at"])
    return subscriber, created


@transaction.atomic
def subscriber_delete(*, external_id: str) -> bool:
    """Erase a subscriber with its inbox, topic memberships and preferences; False if unknown."""
    subscriber = Subscriber.objects.filter(external_id=external_id).first()
    if subscriber is None:
        return False
    with transaction.atomic(), connection.cursor() as cursor:
        # Inbox items have no foreign key to the subscriber (models.InboxItem): lock out inserts first, so a
        # send in flight finishes before, and a send after it no longer sees the subscriber.
        cursor.execute(f"LOCK TABLE {T_INBOX} IN SHARE ROW EXCLUSIVE MODE")
        for table in (T_INBOX, T_TOPICSUB, T_PREFERENCE):
            cursor.execute(f"DELETE FROM {table} WHERE subscriber_id = %s", [subscriber.pk])
        cursor.execute(f"DELETE FROM {T_SUBSCRIBER} WHERE id = %s", [subscriber.pk])
        # Its live sockets (any process) close: they must not keep streaming the organisation's broadcasts.
        publish_to_subscriber_after_commit(
            organization_id=int(connection.tenant.pk),  # type: ignore[attr-defined]
            subscriber_pk=subscriber.pk,
            event=subscriber_erased_event(),
        )
    return True


def subscribers_create_sql(*, external_id: str, source: str) -> str:
    """The one statement that creates subscribers named for the first time: empty fields; existing ones untouched.

    `external_id` is the SQL expression of each id and `source` what follows it (FROM / WHERE / ORDER BY).
    """
    return (
        f"INSERT INTO {T_SUBSCRIBER} (external_id, name, email, locale, data, created_at, updated_at)\n"
        f"SELECT {external_id}, '', '', '', '{{}}'::jsonb, now(), now() {source}\n"
        "ON CONFLICT (external_id) DO NOTHING"
    )


SUBSCRIBERS_ENSURE_SQL = subscribers_create_sql(external_id="x", source="FROM unnest(%s::text[]) AS x ORDER BY x")


def subscribers_ensure(external_ids: list[str]) -> None:
    """Create the subscribers of `external_ids` that do not exist yet (one statement, sorted to order locks)."""
    if not external_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(SUBSCRIBERS_ENSURE_SQL, [sorted(set(external_ids))])


# --- topics ------------------------------------------------------------------------------


@transaction.atomic
def topic_upsert(*, key: str, name: str | None) -> tuple[Topic, bool]:
    """Create the topic or rename it; (topic, created)."""
    topic, created = Topic.objects.get_or_create(key=key, defaults={"name": name or ""})
    if not created and name is not None and topic.name != name:
        topic.name = name
        topic.save(update_fields=["name"])
    return topic, created


@transaction.atomic
def topic_subscribers_add(*, organization_id: int, topic: Topic, external_ids: list[str]) -> int:
    """Add subscribers (created if new) to a topic; the number newly added."""
    subscribers_ensure(external_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {T_TOPICSUB} (topic_id, subscriber_id, created_at)
                SELECT %s, s.id, now() FROM {T_SUBSCRIBER} s WHERE s.external_id = ANY(%s) ORDER BY s.id
                ON CONFLICT (topic_id, subscriber_id) DO NOTHING
                RETURNING subscriber_id""",
            [topic.pk, sorted(set(external_ids))],
        )
        added = [row[0] for row in cursor.fetchall()]
    publish_topic_membership_after_commit(organization_id=organization_id, topic_pk=topic.pk, added=added)
    return len(added)


@transaction.atomic
def topic_subscriber_remove(*, organization_id: int, topic: Topic, external_id: str) -> bool:
    """Remove one subscriber from a topic; False if it was not a member."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""DELETE FROM {T_TOPICSUB} ts USING {T_SUBSCRIBER} s
                WHERE ts.subscriber_id = s.id AND ts.topic_id = %s AND s.external_id = %s
                RETURNING ts.subscriber_id""",
            [topic.pk, external_id],
        )
        removed = [row[0] for row in cursor.fetchall()]
    publish_topic_membership_after_commit(organization_id=organization_id, topic_pk=topic.pk, removed=removed)
    return bool(removed)


@transaction.atomic
def topic_delete(*, organization_id: int, key: str) -> bool:
    """Delete a topic and its memberships (sent messages stay, without their topic); False if unknown."""
    topic = Topic.objects.select_for_update().filter(key=key).first()
    if topic is None:
        return False
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {T_TOPICSUB} WHERE topic_id = %s RETURNING subscriber_id", [topic.pk])
        removed = [row[0] for row in cursor.fetchall()]
        cursor.execute(f"UPDATE {T_MESSAGE} SET topic_id = NULL WHERE topic_id = %s", [topic.pk])
        cursor.execute(f"DELETE FROM {T_TOPIC} WHERE id = %s", [topic.pk])
    # Live sockets of its members leave the topic's group without reconnecting.
    publish_topic_membership_after_commit(organization_id=organization_id, topic_pk=topic.pk, removed=removed)
    return True


# --- inbox (widget) ------------------------------------------------------------------------


@transaction.atomic
def inbox_item_mark(*, organization_id: int, subscriber_pk: int, message_id: str, action: str) -> InboxItem:
    """Mark one inbox item `read`, `unread`, `archive` or `unarchive`; publishes the change to its sockets."""
    message_uuid = message_id_parse(message_id)
    item = None
    if message_uuid is not None:
        item = (
            InboxItem.objects.select_for_update(of=("self",))
            .select_related("message")
            .filter(subscriber_id=subscriber_pk, message_id=message_uuid)
            .first()
        )
    if item is None:
        raise Problem("not-found", "No such notification in this inbox")
    now = timezone.now()
    changed: list[str] = []
    if action == "read" and item.read_at is None:
        item.read_at = now
        changed.append("read_at")
        if item.seen_at is None:
            item.seen_at = now
            changed.append("seen_at")
    elif action == "unread" and item.read_at is not None:
        item.read_at = None
        changed.append("read_at")
    elif action == "archive" and item.archived_at is None:
        item.archived_at = now
        changed.append("archived_at")
    elif action == "unarchive" and item.archived_at is not None:
        item.archived_at = None
        changed.append("archived_at")
    elif action not in ("read", "unread", "archive", "unarchive"):
        raise ValueError(f"unknown inbox action {action!r}")
    if changed:
        item.save(update_fields=changed)
        publish_to_subscriber_after_commit(
            organization_id=organization_id,
            subscriber_pk=subscriber_pk,
            event=inbox_update_event(
                message_id=str(item.message_id),
                read_at=item.read_at,
                seen_at=item.seen_at,
                archived_at=item.archived_at,
                unread_count=unread_count(subscriber_pk=subscriber_pk),
            ),
        )
    return item


@transaction.atomic
def inbox_read_all(*, organization_id: int, subscriber_pk: int) -> int:
    """Mark every unread item read; the number marked. Publishes one `all_read` update."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {T_INBOX} SET read_at = %s, seen_at = coalesce(seen_at, %s)
                WHERE subscriber_id = %s AND read_at IS NULL""",
            [now, now, subscriber_pk],
        )
        marked = cursor.rowcount
    if marked:
        publish_to_subscriber_after_commit(
            organization_id=organization_id, subscriber_pk=subscriber_pk, event=inbox_read_all_event(read_at=now)
        )
    return int(marked)


@transaction.atomic
def preferences_set(*, organization_id: int, external_id: str, categories: dict[str, bool]) -> dict[str, bool]:
    """Set the subscriber's per-category choices (creating the subscriber if new); all its choices after."""
    subscribers_ensure([external_id])
    subscriber = Subscriber.objects.get(external_id=external_id)
    now: datetime = timezone.now()
    if categories:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO {T_PREFERENCE} (subscriber_id, category, enabled, updated_at)
                    SELECT %s, c.category, c.enabled, %s
                    FROM unnest(%s::text[], %s::boolean[]) AS c(category, enabled) ORDER BY c.category
                    ON CONFLICT (subscriber_id, category) DO UPDATE
                        SET enabled = EXCLUDED.enabled, updated_at = EXCLUDED.updated_at""",
                [subscriber.pk, now, list(categories), list(categories.values())],
            )
    choices = dict(Preference.objects.filter(subscriber=subscriber).values_list("category", "enabled"))
    publish_to_subscriber_after_commit(
        organization_id=organization_id,
        subscriber_pk=subscriber.pk,
        event=preferences_changed_event(opted_out=[c for c, enabled in choices.items() if not enabled]),
    )
    return choices


RETENTION_BATCH = 5_000  # messages per transaction: a long backlog is deleted without one long lock


def messages_delete_before(*, before: datetime) -> int:
    """Delete the active schema's messages created before `before`, with their inbox items; how many messages.

    A cursor older than what is left then gets `reset: expired` (delivery.missed_since_async). Runs in batches, each
    its own transaction, so sends keep flowing while a long backlog goes.
    """
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"""WITH doomed AS (
                        SELECT id FROM {T_MESSAGE} WHERE created_at < %s ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED
                    ), items AS (
                        DELETE FROM {T_INBOX} WHERE message_id IN (SELECT id FROM doomed)
                    )
                    DELETE FROM {T_MESSAGE} WHERE id IN (SELECT id FROM doomed)""",
                [before, RETENTION_BATCH],
            )
            deleted = int(cursor.rowcount)
        total += deleted
        if deleted < RETENTION_BATCH:
            return total
