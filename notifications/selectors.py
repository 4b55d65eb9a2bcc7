"""Reads on the active organisation's subscribers, topics, messages and inbox items.

Lists are keyset-paginated with opaque cursors and cost a fixed number of
queries whatever the page size.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Generic, TypeVar

from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, Window
from django.db.models.functions import RowNumber

from herald.problems import Problem
from notifications.models import InboxItem, Message, Preference, Subscriber, Topic, TopicSubscription

T = TypeVar("T")

# The unread rule, in one place: an inbox item neither read nor archived (the partial index `inboxitem_unread`).
# Written as SQL because the socket's session statement (notifications.delivery.SESSION_SQL) counts inside its
# one round trip; `{subscriber}` is the SQL expression of the subscriber's pk.
UNREAD_COUNT_SQL = (
    f"SELECT count(*) FROM {InboxItem._meta.db_table}"
    " WHERE subscriber_id = {subscriber} AND read_at IS NULL AND archived_at IS NULL"
)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    has_more: bool


def cursor_encode(kind: str, value: int) -> str:
    """An opaque cursor: base64url of a small JSON document naming the list it belongs to."""
    raw = json.dumps({"k": kind, "v": int(value)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(kind: str, cursor: str | None) -> int | None:
    """The position a cursor holds; Problem(invalid-cursor) when it is not one of this list's."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("k") != kind or not isinstance(data.get("v"), int):
            raise ValueError
        return int(data["v"])
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
        raise Problem("invalid-cursor") from None


def _page(rows: list[T], limit: int, kind: str, position: Any) -> Page[T]:
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursor_encode(kind, position(rows[-1])) if has_more and rows else None
    return Page(items=rows, next_cursor=next_cursor, has_more=has_more)


def subscriber_get(*, external_id: str) -> Subscriber | None:
    return Subscriber.objects.filter(external_id=external_id).first()


def subscriber_pk(*, external_id: str) -> int | None:
    return Subscriber.objects.filter(external_id=external_id).values_list("pk", flat=True).first()


def topic_get(*, key: str) -> Topic | None:
    return Topic.objects.filter(key=key).first()


def subscribers_page(*, cursor: str | None, limit: int) -> Page[Subscriber]:
    """Subscribers in creation order (one query)."""
    after = cursor_decode("subscribers", cursor)
    queryset = Subscriber.objects.order_by("id")
    if after is not None:
        queryset = queryset.filter(id__gt=after)
    return _page(list(queryset[: limit + 1]), limit, "subscribers", lambda s: s.pk)


def topic_subscribers_page(*, topic: Topic, cursor: str | None, limit: int) -> Page[Subscriber]:
    """A topic's subscribers in subscriber order (one query)."""
    after = cursor_decode("topic-subscribers", cursor)
    queryset = Subscriber.objects.filter(topic_subscriptions__topic=topic).order_by("id")
    if after is not None:
        queryset = queryset.filter(id__gt=after)
    return _page(list(queryset[: limit + 1]), limit, "topic-subscribers", lambda s: s.pk)


def inbox_page(
    *,
    subscriber_pk: int | None,
    cursor: str | None,
    limit: int,
    read: bool | None = None,
    archived: bool | None = False,
    category: str | None = None,
) -> Page[InboxItem]:
    """A subscriber's inbox, newest first, with its messages (one query)."""
    before = cursor_decode("inbox", cursor)
    if subscriber_pk is None:
        return Page(items=[], next_cursor=None, has_more=False)
    queryset = InboxItem.objects.filter(subscriber_id=subscriber_pk).select_related("message").order_by("-seq")
    if before is not None:
        queryset = queryset.filter(seq__lt=before)
    if read is not None:
        queryset = queryset.filter(read_at__isnull=not read)
    if archived is not None:
        queryset = queryset.filter(archived_at__isnull=not archived)
    if category:
        queryset = queryset.filter(category=category)
    return _page(list(queryset[: limit + 1]), limit, "inbox", lambda item: item.seq)


def unread_count(*, subscriber_pk: int | None) -> int:
    """Unread, unarchived items of a subscriber (UNREAD_COUNT_SQL)."""
    if subscriber_pk is None:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(UNREAD_COUNT_SQL.format(subscriber="%s"), [subscriber_pk])
        row = cursor.fetchone()
    return int(row[0]) if row is not None else 0


def message_id_parse(message_id: str) -> uuid.UUID | None:
    """The message (and inbox item) id a client gave, or None when it is not one."""
    try:
        return uuid.UUID(str(message_id))
    except ValueError:
        return None


@dataclass(frozen=True)
class MessageWithDelivery:
    message: Message
    topic_key: str | None
    delivered: int
    seen: int
    read: int
    archived: int


def message_get(*, message_id: str) -> MessageWithDelivery | None:
    """A message and how its inbox items stand (two queries)."""
    pk = message_id_parse(message_id)
    if pk is None:
        return None
    message = Message.objects.filter(pk=pk).select_related("topic").first()
    if message is None:
        return None
    counts = InboxItem.objects.filter(message_id=pk).aggregate(
        delivered=Count("id"),
        seen=Count("id", filter=Q(seen_at__isnull=False)),
        read=Count("id", filter=Q(read_at__isnull=False)),
        archived=Count("id", filter=Q(archived_at__isnull=False)),
    )
    return MessageWithDelivery(
        message=message,
        topic_key=message.topic.key if message.topic is not None else None,
        delivered=counts["delivered"],
        seen=counts["seen"],
        read=counts["read"],
        archived=counts["archived"],
    )


def preferences_get(*, subscriber_pk: int | None) -> dict[str, bool]:
    if subscriber_pk is None:
        return {}
    return dict(
        Preference.objects.filter(subscriber_id=subscriber_pk).order_by("category").values_list("category", "enabled")
    )


# --- the portal's activity and subscriber pages ---------------------------------------------

ACTIVITY_RECIPIENTS_SHOWN = 5  # recipients listed under each message of an activity page


@dataclass(frozen=True)
class ActivityFilter:
    """What an activity page is narrowed to; every field optional."""

    subscriber_id: str | None = None
    category: str | None = None
    topic: str | None = None
    since: date | None = None  # inclusive, UTC
    until: date | None = None  # inclusive, UTC


@dataclass(frozen=True)
class MessageActivity:
    """A sent message, its receipts at a glance and its first recipients."""

    message: Message
    topic_key: str | None
    recipients: int
    delivered: int
    seen: int
    read: int
    archived: int
    first_recipients: list[InboxItem]


def _receipt_counts(queryset: Any) -> Any:
    return queryset.annotate(
        n_recipients=Count("inbox_items"),
        n_delivered=Count("inbox_items", filter=Q(inbox_items__delivered_at__isnull=False)),
        n_seen=Count("inbox_items", filter=Q(inbox_items__seen_at__isnull=False)),
        n_read=Count("inbox_items", filter=Q(inbox_items__read_at__isnull=False)),
        n_archived=Count("inbox_items", filter=Q(inbox_items__archived_at__isnull=False)),
    )


def _activity(message: Message, first: list[InboxItem]) -> MessageActivity:
    return MessageActivity(
        message=message,
        topic_key=message.topic.key if message.topic is not None else None,
        recipients=message.n_recipients,  # type: ignore[attr-defined]
        delivered=message.n_delivered,  # type: ignore[attr-defined]
        seen=message.n_seen,  # type: ignore[attr-defined]
        read=message.n_read,  # type: ignore[attr-defined]
        archived=message.n_archived,  # type: ignore[attr-defined]
        first_recipients=first,
    )


def activity_page(*, filters: ActivityFilter, cursor: str | None, limit: int) -> Page[MessageActivity]:
    """Messages newest first with their receipt counts and first recipients (two queries)."""
    before = cursor_decode("activity", cursor)
    messages = Message.objects.select_related("topic").order_by("-seq")
    if before is not None:
        messages = messages.filter(seq__lt=before)
    if filters.subscriber_id:
        messages = messages.filter(
            Exists(InboxItem.objects.filter(message_id=OuterRef("pk"), subscriber__external_id=filters.subscriber_id))
        )
    if filters.category:
        messages = messages.filter(category=filters.category)
    if filters.topic:
        messages = messages.filter(topic__key=filters.topic)
    if filters.since:
        messages = messages.filter(created_at__gte=datetime.combine(filters.since, time.min, UTC))
    if filters.until:
        messages = messages.filter(created_at__lt=datetime.combine(filters.until + timedelta(days=1), time.min, UTC))
    rows = list(_receipt_counts(messages)[: limit + 1])
    page = _page(rows, limit, "activity", lambda m: m.seq)
    ids = [m.pk for m in page.items]
    first: dict[uuid.UUID, list[InboxItem]] = {pk: [] for pk in ids}
    if ids:
        ranked = (
            InboxItem.objects.filter(message_id__in=ids)
            .select_related("subscriber")
            .annotate(rank=Window(RowNumber(), partition_by=[F("message_id")], order_by=F("id").asc()))
            .filter(rank__lte=ACTIVITY_RECIPIENTS_SHOWN)
            .order_by("message_id", "id")
        )
        for item in ranked:
            first[item.message_id].append(item)
    return Page(
        items=[_activity(m, first[m.pk]) for m in page.items], next_cursor=page.next_cursor, has_more=page.has_more
    )


def message_activity_get(*, message_id: str) -> MessageActivity | None:
    """One message with its receipt counts (one query), or None for an unknown or malformed id."""
    try:
        pk = uuid.UUID(str(message_id))
    except ValueError:
        return None
    message = _receipt_counts(Message.objects.select_related("topic").filter(pk=pk)).first()
    return _activity(message, []) if message is not None else None


def message_recipients_page(*, message_id: uuid.UUID, cursor: str | None, limit: int) -> Page[InboxItem]:
    """A message's recipients with their receipts, in inbox-item order (one query)."""
    after = cursor_decode("recipients", cursor)
    queryset = InboxItem.objects.filter(message_id=message_id).select_related("subscriber").order_by("id")
    if after is not None:
        queryset = queryset.filter(id__gt=after)
    return _page(list(queryset[: limit + 1]), limit, "recipients", lambda item: item.pk)


def subscribers_search(*, query: str, cursor: str | None, limit: int) -> Page[Subscriber]:
    """Subscribers whose id or e-mail contains `query` (all of them when it is empty), oldest first (one query)."""
    after = cursor_decode("subscriber-search", cursor)
    queryset = Subscriber.objects.order_by("id")
    query = query.strip()
    if query:
        queryset = queryset.filter(Q(external_id__icontains=query) | Q(email__icontains=query))
    if after is not None:
        queryset = queryset.filter(id__gt=after)
    return _page(list(queryset[: limit + 1]), limit, "subscriber-search", lambda s: s.pk)


def subscriber_topics(*, subscriber_pk: int) -> list[Topic]:
    """The topics a subscriber belongs to, by key (one query)."""
    return list(Topic.objects.filter(subscriptions__subscriber_id=subscriber_pk).order_by("key"))


# --- topics with their subscriber counts -----------------------------------------------------


def _topics_counted() -> Any:
    return Topic.objects.annotate(subscriber_count=Count("subscriptions")).order_by("id")


def topic_get_counted(*, key: str) -> Topic | None:
    """A topic with `subscriber_count` (one query)."""
    return _topics_counted().filter(key=key).first()  # type: ignore[no-any-return]


def topics_page(*, cursor: str | None, limit: int) -> Page[Topic]:
    """Topics in creation order, each with `subscriber_count` (one query)."""
    after = cursor_decode("topics", cursor)
    queryset = _topics_counted()
    if after is not None:
        queryset = queryset.filter(id__gt=after)
    return _page(list(queryset[: limit + 1]), limit, "topics", lambda t: t.pk)


def subscriber_topics_page(*, subscriber_pk: int, cursor: str | None, limit: int) -> Page[Topic]:
    """The topics a subscriber is in, in topic order, each with `subscriber_count` (one query)."""
    after = cursor_decode("subscriber-topics", cursor)
    member_of = TopicSubscription.objects.filter(subscriber_id=subscriber_pk).values("topic_id")
    queryset = _topics_counted().filter(id__in=member_of)
    if after is not None:
        queryset = queryset.filter(id__gt=after)
    return _page(list(queryset[: limit + 1]), limit, "subscriber-topics", lambda t: t.pk)
