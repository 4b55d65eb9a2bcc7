"""Writes on the active organisation's subscribers, topics, messages and inbox items.

Every function runs in the schema the caller activated (the API pipeline
activates the request's organisation) and takes `organization_id` where it
publishes, so the events it schedules name the right tenant's groups. Anything
that leaves the process runs after commit (notifications.realtime).

Sending writes a whole batch of messages with one statement: the message
rows, every recipient's inbox item (INSERT ... SELECT over the audience, with
category opt-outs left out) and the organisation's sequence, taken by
`INSERT ... ON CONFLICT DO UPDATE ... RETURNING` on its single row, whose lock
then orders the commits (see MessageSequence).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.db import connection, transaction
from django.utils import timezone

from herald.problems import Problem
from notifications.models import (
    IdempotencyRecord,
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
    messages_events,
    preferences_changed_event,
    publish_events_after_commit,
    publish_to_subscriber_after_commit,
    publish_topic_membership_after_commit,
)
from notifications.schemas import inbox_item_payload
from notifications.selectors import message_id_parse, unread_count

logger = logging.getLogger(__name__)

T_SUBSCRIBER = Subscriber._meta.db_table
T_TOPIC = Topic._meta.db_table
T_TOPICSUB = TopicSubscription._meta.db_table
T_MESSAGE = Message._meta.db_table
T_INBOX = InboxItem._meta.db_table
T_PREFERENCE = Preference._meta.db_table
T_SEQUENCE = MessageSequence._meta.db_table
T_IDEMPOTENCY = IdempotencyRecord._meta.db_table

IDEMPOTENCY_TTL_HOURS = 24
SEND_ENDPOINT = "/v1/notifications"


# --- idempotency ------------------------------------------------------------------


def idempotency_claim(*, endpoint: str, key: str, request_hash: str) -> tuple[int, Any] | None:
    """Claim `key` for this request (None), or the stored (status, body) of its first use.

    Run inside the transaction that does the work: a concurrent request with the
    same key waits on the claim's row until this one commits, then gets its
    response. A key older than 24 h may be claimed again. Same key, other
    request: Problem(idempotency-key-reused).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {T_IDEMPOTENCY} AS r (key, endpoint, request_hash, status_code, response, created_at)
                VALUES (%s, %s, %s, 0, 'null'::jsonb, now())
                ON CONFLICT (endpoint, key) DO UPDATE
                    SET request_hash = EXCLUDED.request_hash, status_code = 0, response = 'null'::jsonb,
                        created_at = now()
                    WHERE r.created_at < now() - interval '{IDEMPOTENCY_TTL_HOURS} hours'
                RETURNING id""",
            [key, endpoint, request_hash],
        )
        if cursor.fetchone() is not None:
            return None
        cursor.execute(
            f"SELECT request_hash, status_code, response FROM {T_IDEMPOTENCY} WHERE endpoint = %s AND key = %s",
            [endpoint, key],
        )
        row = cursor.fetchone()
    if row is None or row[1] == 0:  # pragma: no cover - claims are committed with a response or rolled back
        raise Problem("idempotency-key-reused", "This Idempotency-Key is in use by a request that did not finish")
    if row[0] != request_hash:
        raise Problem("idempotency-key-reused")
    body = json.loads(row[2]) if isinstance(row[2], str | bytes) else row[2]
    return int(row[1]), body


def idempotency_store(*, endpoint: str, key: str, status_code: int, response: Any) -> None:
    """Record the response of a claimed key (same transaction as the claim)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {T_IDEMPOTENCY} SET status_code = %s, response = %s::jsonb WHERE endpoint = %s AND key = %s",
            [status_code, json.dumps(response), endpoint, key],
        )


def idempotency_purge(*, older_than: timedelta) -> int:
    """Delete the active schema's idempotency records older than `older_than` (at least 24 h); how many."""
    if older_than < timedelta(hours=IDEMPOTENCY_TTL_HOURS):
        raise ValueError(f"idempotency keys are kept at least {IDEMPOTENCY_TTL_HOURS} h")
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {T_IDEMPOTENCY} WHERE created_at < %s", [timezone.now() - older_than])
        return int(cursor.rowcount)


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


# --- sending ---------------------------------------------------------------------------------


@dataclass
class NotificationDraft:
    """One notification to send: exactly one audience, and its content."""

    title: str
    to: list[str] | None = None
    topic: str | None = None
    broadcast: bool = False
    body: str = ""
    action_url: str = ""
    category: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    request_hash: str = ""

    @property
    def audience(self) -> str:
        if self.broadcast:
            return Message.Audience.BROADCAST
        if self.topic is not None:
            return Message.Audience.TOPIC
        return Message.Audience.SUBSCRIBERS


@dataclass(frozen=True)
class SendResult:
    """What a sender is told: the message, its sequence and how many inboxes it reached."""

    id: str
    seq: int
    recipients: int

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "recipients": self.recipients}


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


def send_prepare(drafts: list[NotificationDraft], topic_pks: dict[str, int]) -> PreparedSend:
    """The parameters of SEND_SQL for `drafts` (audiences already checked)."""
    now = timezone.now()
    ids = [uuid.uuid4() for _ in drafts]
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


@dataclass(frozen=True, slots=True)
class _MessageFields:
    id: uuid.UUID
    seq: int
    title: str
    body: str
    action_url: str
    category: str
    data: dict[str, Any]
    created_at: datetime


def send_results(
    prepared: PreparedSend, drafts: list[NotificationDraft], topic_pks: dict[str, int], rows: list[Any]
) -> list[SentMessage]:
    """Read SEND_SQL's rows: one SentMessage per draft, in order."""
    sent = []
    for (_, seq, recipients, sids), draft, message_id in zip(rows, drafts, prepared.ids, strict=True):
        # The fields inbox_item_payload reads, without a model instance per message (a batch's hot spot).
        message = _MessageFields(
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
                notification=inbox_item_payload(cast(Message, message)) if recipients else {},
                audience=draft.audience,
                topic_pk=topic_pks.get(draft.topic) if draft.topic is not None else None,
                subscriber_pks=list(sids) if sids is not None else None,
            )
        )
    return sent


def _messages_write(
    *, organization_id: int, drafts: list[NotificationDraft], topic_pks: dict[str, int]
) -> list[SendResult]:
    """Write `drafts` (audiences already checked) with one statement; schedule their publication."""
    subscribers_ensure([external_id for d in drafts for external_id in (d.to or [])])
    prepared = send_prepare(drafts, topic_pks)
    with connection.cursor() as cursor:
        cursor.execute(SEND_SQL, prepared.params)
        rows = cursor.fetchall()
    sent = send_results(prepared, drafts, topic_pks, rows)
    publish_events_after_commit(sent_message_events(organization_id, sent))
    return [message.result for message in sent]


def sent_message_events(organization_id: int, sent: list[SentMessage]) -> list[tuple[str, dict[str, Any]]]:
    """The channel-layer events that announce the messages of `sent` that reached anyone."""
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


def _topic_pks(keys: set[str]) -> dict[str, int]:
    if not keys:
        return {}
    return dict(Topic.objects.filter(key__in=keys).values_list("key", "pk"))


@transaction.atomic
def notification_send(*, organization_id: int, draft: NotificationDraft) -> SendResult:
    """Send one notification; the result is final once the caller's transaction commits."""
    topic_pks = _topic_pks({draft.topic} if draft.topic is not None else set())
    if draft.topic is not None and draft.topic not in topic_pks:
        raise Problem("not-found", f"No topic {draft.topic!r}")
    return _messages_write(organization_id=organization_id, drafts=[draft], topic_pks=topic_pks)[0]


@dataclass(frozen=True)
class BatchItemResult:
    index: int
    status: int
    result: SendResult | None = None
    problem: Problem | None = None
    replayed: bool = False


@transaction.atomic
def notification_send_batch(*, organization_id: int, drafts: list[NotificationDraft]) -> list[BatchItemResult]:
    """Send up to 100 notifications in one transaction; each item succeeds or fails whole, on its own.

    An item fails (and writes nothing) when its topic is unknown or its
    idempotency key was used with another body; an item whose key was used with
    the same body gets the stored result and writes nothing.
    """
    outcome: dict[int, BatchItemResult] = {}
    claimed: list[int] = []
    keyed = sorted(
        (index for index, draft in enumerate(drafts) if draft.idempotency_key),
        key=lambda i: drafts[i].idempotency_key or "",
    )
    seen_keys: dict[str, int] = {}
    for index in keyed:
        draft = drafts[index]
        assert draft.idempotency_key is not None
        if draft.idempotency_key in seen_keys:
            outcome[index] = BatchItemResult(
                index=index, status=422, problem=Problem("idempotency-key-reused", "Key repeated within the batch")
            )
            continue
        seen_keys[draft.idempotency_key] = index
        try:
            stored = idempotency_claim(
                endpoint=SEND_ENDPOINT, key=draft.idempotency_key, request_hash=draft.request_hash
            )
        except Problem as problem:
            outcome[index] = BatchItemResult(index=index, status=problem.status, problem=problem)
            continue
        if stored is None:
            claimed.append(index)
        else:
            status, body = stored
            replay = SendResult(id=body["id"], seq=body["seq"], recipients=body["recipients"])
            outcome[index] = BatchItemResult(index=index, status=status, result=replay, replayed=True)
    topic_pks = _topic_pks({d.topic for i, d in enumerate(drafts) if d.topic is not None and i not in outcome})
    for index, draft in enumerate(drafts):
        if index not in outcome and draft.topic is not None and draft.topic not in topic_pks:
            outcome[index] = BatchItemResult(
                index=index, status=404, problem=Problem("not-found", f"No topic {draft.topic!r}")
            )
    to_send = [index for index in range(len(drafts)) if index not in outcome]
    if to_send:
        results = _messages_write(
            organization_id=organization_id, drafts=[drafts[i] for i in to_send], topic_pks=topic_pks
        )
        for index, result in zip(to_send, results, strict=True):
            outcome[index] = BatchItemResult(index=index, status=202, result=result)
    for index in claimed:
        item = outcome[index]
        key = drafts[index].idempotency_key
        assert key is not None
        if item.result is not None and item.status == 202:
            idempotency_store(endpoint=SEND_ENDPOINT, key=key, status_code=202, response=item.result.as_dict())
        else:
            IdempotencyRecord.objects.filter(endpoint=SEND_ENDPOINT, key=key).delete()
    return [outcome[index] for index in range(len(drafts))]


# --- inbox (widget) ------------------------------------------------------------------------


@transaction.atomic
def inbox_item_mark(*, organization_id: int, subscriber_pk: int, message_id: str, action: str) -> InboxItem:
    """Mark one inbox item `read`, `unread` or `archive`; publishes the change to the subscriber's sockets."""
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
    elif action not in ("read", "unread", "archive"):
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
