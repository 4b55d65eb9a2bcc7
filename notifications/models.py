"""Subscribers, topics, messages and inbox items: one set of tables per organisation schema."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class Subscriber(models.Model):
    """An end user of a customer's app, named by the customer's own id."""

    external_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255, blank=True, default="")
    email = models.EmailField(max_length=254, blank=True, default="")
    locale = models.CharField(max_length=35, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.external_id


class Topic(models.Model):
    """A named audience subscribers can be added to."""

    key = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.key


class TopicSubscription(models.Model):
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="subscriptions")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="topic_subscriptions")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["topic", "subscriber"], name="topicsub_unique")]
        indexes = [models.Index(fields=["subscriber"], name="topicsub_subscriber")]

    def __str__(self) -> str:
        return f"{self.topic_id}:{self.subscriber_id}"


class MessageSequence(models.Model):
    """The organisation's one message counter (a single row).

    Taking the next values with UPDATE ... RETURNING holds the row lock until
    commit, so sequences become visible in the order they were handed out and
    a cursor never skips a message that commits late.
    """

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return str(self.value)


class Message(models.Model):
    """One notification as sent; each recipient gets an InboxItem."""

    class Audience(models.TextChoices):
        SUBSCRIBERS = "subscribers", "Subscribers"
        TOPIC = "topic", "Topic"
        BROADCAST = "broadcast", "Broadcast"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    seq = models.BigIntegerField(unique=True)
    audience = models.CharField(max_length=16, choices=Audience.choices)
    topic = models.ForeignKey(Topic, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    title = models.CharField(max_length=500)
    body = models.TextField(blank=True, default="")
    action_url = models.CharField(max_length=2048, blank=True, default="")
    category = models.CharField(max_length=100, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    recipient_count = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"{self.seq}: {self.title}"


class InboxItem(models.Model):
    """A message in one subscriber's inbox, with its read/seen/archived state.

    A subscriber holds a message at most once, so outside the database an inbox
    item is named by its message's id: one pre-built frame can then serve every
    recipient of a broadcast.
    """

    # Fan-out writes one row per recipient (5,000 for a broadcast to 5,000 subscribers), so the row is
    # lean: no database foreign keys. Their deferred checks cost about 100 ms at commit for 5,000 rows,
    # as much as the insert itself (infra/bench/realtime.py, (b)). What they guarded is kept otherwise:
    # - the message is written by the same statement as its items (notifications.sending.SEND_SQL),
    #   and only Django deletes messages, cascading here;
    # - a subscriber's erasure locks this table against inserts first (services.subscriber_delete),
    #   so no send racing it can leave an item behind for the erased subscriber.
    # The subscriber has no index of its own: the two composite indexes below start with it.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="inbox_items", db_constraint=False)
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="inbox_items", db_constraint=False, db_index=False
    )
    seq = models.BigIntegerField()
    category = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # First written to one of the subscriber's sockets, live or by replay (notifications.receipts, in batches).
    delivered_at = models.DateTimeField(null=True, blank=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-seq"]
        constraints = [models.UniqueConstraint(fields=["subscriber", "message"], name="inboxitem_unique_message")]
        indexes = [
            models.Index(fields=["subscriber", "seq"], name="inboxitem_subscriber_seq"),
            models.Index(
                fields=["subscriber"],
                name="inboxitem_unread",
                condition=Q(read_at__isnull=True, archived_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber_id}:{self.message_id}"


class Preference(models.Model):
    """A subscriber's opt-out of one category."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="preferences")
    category = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subscriber", "category"], name="preference_unique_category")]

    def __str__(self) -> str:
        return f"{self.subscriber_id}:{self.category}={self.enabled}"


class IdempotencyRecord(models.Model):
    """The first response to a POST with an Idempotency-Key (kept at least 24 h)."""

    key = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=100)
    request_hash = models.CharField(max_length=64)
    status_code = models.SmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "key"], name="idempotency_unique_key")]

    def __str__(self) -> str:
        return f"{self.endpoint}:{self.key}"
