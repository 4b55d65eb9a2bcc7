"""`Herald` (sync) and `AsyncHerald` (async): thin shells that carry out the shared core's calls.

Both take the same arguments and offer the same methods, generated from one list
(`_operations` builds every request; `_core.RetryPolicy` decides every retry).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import date
from types import TracebackType
from typing import Any, TypeVar

import httpx

from herald_client import _operations as ops
from herald_client._core import DEFAULT_BASE_URL, Call, RetryPolicy, connection_error
from herald_client.types import (
    BatchResult,
    InboxItem,
    Message,
    NotificationAccepted,
    Page,
    Preferences,
    ReadAll,
    Subscriber,
    Token,
    Topic,
    TopicDetail,
    TopicSubscribersAdded,
    Usage,
)

T = TypeVar("T")


class Herald:
    """The server API with a secret key, over a blocking `httpx.Client`."""

    def __init__(
        self,
        secret_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.secret_key = secret_key
        self.base_url = base_url
        self.retry = retry or RetryPolicy()
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)

    def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self._http.request(**call.request_kwargs(self.base_url, self.secret_key))
            except httpx.TransportError as error:
                delay = self.retry.after_error(attempt, error)
                if delay is None:
                    raise connection_error(call, error, attempt + 1) from error
            else:
                delay = self.retry.after_response(attempt, response)
                if delay is None:
                    return call.finish(response)
                response.close()
            attempt += 1
            time.sleep(delay)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Herald:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def send(
        self,
        *,
        title: str,
        to: Sequence[str] | None = None,
        topic: str | None = None,
        broadcast: bool | None = None,
        body: str | None = None,
        action_url: str | None = None,
        category: str | None = None,
        data: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> NotificationAccepted:
        """Send one notification to exactly one audience: `to`, `topic` or `broadcast=True`."""
        return self._run(
            ops.send(
                ops.notification(
                    title=title,
                    to=to,
                    topic=topic,
                    broadcast=broadcast,
                    body=body,
                    action_url=action_url,
                    category=category,
                    data=data,
                ),
                idempotency_key,
            )
        )

    def send_batch(self, notifications: Sequence[dict[str, Any]], *, idempotency_key: str | None = None) -> BatchResult:
        """Send up to 100 notifications (build each with `herald_client.notification(...)`); one result per item."""
        return self._run(ops.send_batch(notifications, idempotency_key))

    def message_get(self, message_id: str) -> Message:
        """A sent message and its delivery counts."""
        return self._run(ops.message_get(message_id))

    def subscriber_upsert(
        self,
        subscriber_id: str,
        *,
        name: str | None = None,
        email: str | None = None,
        locale: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Subscriber:
        """Create the subscriber or update the fields given."""
        return self._run(
            ops.subscriber_upsert(subscriber_id, ops._given(name=name, email=email, locale=locale, data=data))
        )

    def subscriber_get(self, subscriber_id: str) -> Subscriber:
        """One subscriber."""
        return self._run(ops.subscriber_get(subscriber_id))

    def subscriber_delete(self, subscriber_id: str) -> None:
        """Erase a subscriber with its inbox, topic memberships and preferences."""
        return self._run(ops.subscriber_delete(subscriber_id))

    def subscribers_list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Subscriber]:
        """One page of subscribers; pass `next_cursor` back as `cursor`."""
        return self._run(ops.subscribers_list(limit, cursor))

    def subscriber_notifications(
        self,
        subscriber_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        read: bool | None = None,
        archived: bool | None = None,
        category: str | None = None,
    ) -> Page[InboxItem]:
        """One page of a subscriber's inbox, newest first."""
        return self._run(
            ops.subscriber_notifications(
                subscriber_id, limit=limit, cursor=cursor, read=read, archived=archived, category=category
            )
        )

    def mark_read(self, subscriber_id: str, message_id: str, *, idempotency_key: str | None = None) -> InboxItem:
        """Mark a subscriber's notification read; their open widgets update."""
        return self._run(ops.inbox_mark(subscriber_id, message_id, "read", idempotency_key))

    def mark_unread(self, subscriber_id: str, message_id: str, *, idempotency_key: str | None = None) -> InboxItem:
        """Mark a subscriber's notification unread."""
        return self._run(ops.inbox_mark(subscriber_id, message_id, "unread", idempotency_key))

    def archive(self, subscriber_id: str, message_id: str, *, idempotency_key: str | None = None) -> InboxItem:
        """Archive a subscriber's notification."""
        return self._run(ops.inbox_mark(subscriber_id, message_id, "archive", idempotency_key))

    def unarchive(self, subscriber_id: str, message_id: str, *, idempotency_key: str | None = None) -> InboxItem:
        """Bring a subscriber's notification back from the archive."""
        return self._run(ops.inbox_mark(subscriber_id, message_id, "unarchive", idempotency_key))

    def read_all(self, subscriber_id: str, *, idempotency_key: str | None = None) -> ReadAll:
        """Mark all of a subscriber's notifications read."""
        return self._run(ops.inbox_read_all(subscriber_id, idempotency_key))

    def preferences_get(self, subscriber_id: str) -> Preferences:
        """A subscriber's category preferences."""
        return self._run(ops.preferences_get(subscriber_id))

    def preferences_set(self, subscriber_id: str, categories: dict[str, bool]) -> Preferences:
        """Set categories (False opts out); others keep their state."""
        return self._run(ops.preferences_set(subscriber_id, categories))

    def subscriber_topics(
        self, subscriber_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[TopicDetail]:
        """One page of the topics a subscriber is in."""
        return self._run(ops.subscriber_topics(subscriber_id, limit, cursor))

    def token_issue(
        self, subscriber_id: str, *, expires_in: int | None = None, idempotency_key: str | None = None
    ) -> Token:
        """A subscriber JWT issued by Herald (or sign one yourself with `subscriber_token`)."""
        return self._run(ops.token_issue(subscriber_id, expires_in, idempotency_key))

    def topic_upsert(self, key: str, *, name: str | None = None) -> Topic:
        """Create or rename a topic."""
        return self._run(ops.topic_upsert(key, name))

    def topic_get(self, key: str) -> TopicDetail:
        """A topic with its subscriber count."""
        return self._run(ops.topic_get(key))

    def topic_delete(self, key: str) -> None:
        """Delete a topic and its memberships (subscribers and sent messages stay)."""
        return self._run(ops.topic_delete(key))

    def topics_list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[TopicDetail]:
        """One page of topics with their subscriber counts."""
        return self._run(ops.topics_list(limit, cursor))

    def topic_subscribers_add(
        self, key: str, subscriber_ids: Sequence[str], *, idempotency_key: str | None = None
    ) -> TopicSubscribersAdded:
        """Add subscribers (created if new) to a topic."""
        return self._run(ops.topic_subscribers_add(key, subscriber_ids, idempotency_key))

    def topic_subscriber_remove(self, key: str, subscriber_id: str) -> None:
        """Remove one subscriber from a topic."""
        return self._run(ops.topic_subscriber_remove(key, subscriber_id))

    def topic_subscribers(self, key: str, *, limit: int | None = None, cursor: str | None = None) -> Page[Subscriber]:
        """One page of a topic's subscribers."""
        return self._run(ops.topic_subscribers(key, limit, cursor))

    def usage(self, *, start: date | str | None = None, end: date | str | None = None) -> Usage:
        """Messages and notifications per day (UTC), `start` to `end` inclusive."""
        return self._run(ops.usage(start, end))


class AsyncHerald:
    """The server API with a secret key, over an `httpx.AsyncClient`."""

    def __init__(
        self,
        secret_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.secret_key = secret_key
        self.base_url = base_url
        self.retry = retry or RetryPolicy()
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    async def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.request(**call.request_kwargs(self.base_url, self.secret_key))
            except httpx.TransportError as error:
                delay = self.retry.after_error(attempt, error)
                if delay is None:
                    raise connection_error(call, error, attempt + 1) from error
            else:
                delay = self.retry.after_response(attempt, response)
                if delay is None:
                    return call.finish(response)
                await response.aclose()
            attempt += 1
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncHerald:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def send(
        self,
        *,
        title: str,
        to: Sequence[str] | None = None,
        topic: str | None = None,
        broadcast: bool | None = None,
        body: str | None = None,
        action_url: str | None = None,
        category: str | None = None,
        data: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> NotificationAccepted:
        """Send one notification to exactly one audience: `to`, `topic` or `broadcast=True`."""
        return await self._run(
            ops.send(
                ops.notification(
                    title=title,
                    to=to,
                    topic=topic,
                    broadcast=broadcast,
                    body=body,
                    action_url=action_url,
                    category=category,
                    data=data,
                ),
                idempotency_key,
            )
        )

    async def send_batch(
        self, notifications: Sequence[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> BatchResult:
        """Send up to 100 notifications (build each with `herald_client.notification(...)`); one result per item."""
        return await self._run(ops.send_batch(notifications, idempotency_key))

    async def message_get(self, message_id: str) -> Message:
        """A sent message and its delivery counts."""
        return await self._run(ops.message_get(message_id))

    async def subscriber_upsert(
        self,
        subscriber_id: str,
        *,
        name: str | None = None,
        email: str | None = None,
        locale: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Subscriber:
        """Create the subscriber or update the fields given."""
        return await self._run(
            ops.subscriber_upsert(subscriber_id, ops._given(name=name, email=email, locale=locale, data=data))
        )

    async def subscriber_get(self, subscriber_id: str) -> Subscriber:
        """One subscriber."""
        return await self._run(ops.subscriber_get(subscriber_id))

    async def subscriber_delete(self, subscriber_id: str) -> None:
        """Erase a subscriber with its inbox, topic memberships and preferences."""
        return await self._run(ops.subscriber_delete(subscriber_id))

    async def subscribers_list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Subscriber]:
        """One page of subscribers; pass `next_cursor` back as `cursor`."""
        return await self._run(ops.subscribers_list(limit, cursor))

    async def subscriber_notifications(
        self,
        subscriber_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        read: bool | None = None,
        archived: bool | None = None,
        category: str | None = None,
    ) -> Page[InboxItem]:
        """One page of a subscriber's inbox, newest first."""
        return await self._run(
            ops.subscriber_notifications(
                subscriber_id, limit=limit, cursor=cursor, read=read, archived=archived, category=category
            )
        )

    async def mark_read(self, subscriber_id: str, message_id: str, *, idempotency_key: str | None = None) -> InboxItem:
        """Mark a subscriber's notification read; their open widgets update."""
        return await self._run(ops.inbox_mark(subscriber_id, message_id, "read", idempotency_key))

    async def mark_unread(
        self, subscriber_id: str, message_id: str, *, idempotency_key: str | None = None
    ) -> InboxItem:
        """Mark a subscriber's notification unread."""
        return await self._run(ops.inbox_mark(subscriber_id, message_id, "unread", idempotency_key))

    async def archive(self, subscriber_id: str, message_id: str, *, idempotency_key: str | None = None) -> InboxItem:
        """Archive a subscriber's notification."""
        return await self._run(ops.inbox_mark(subscriber_id, message_id, "archive", idempotency_key))

    async def unarchive(self, subscriber_id: str, message_id: str, *, idempotency_key: str | None = None) -> InboxItem:
        """Bring a subscriber's notification back from the archive."""
        return await self._run(ops.inbox_mark(subscriber_id, message_id, "unarchive", idempotency_key))

    async def read_all(self, subscriber_id: str, *, idempotency_key: str | None = None) -> ReadAll:
        """Mark all of a subscriber's notifications read."""
        return await self._run(ops.inbox_read_all(subscriber_id, idempotency_key))

    async def preferences_get(self, subscriber_id: str) -> Preferences:
        """A subscriber's category preferences."""
        return await self._run(ops.preferences_get(subscriber_id))

    async def preferences_set(self, subscriber_id: str, categories: dict[str, bool]) -> Preferences:
        """Set categories (False opts out); others keep their state."""
        return await self._run(ops.preferences_set(subscriber_id, categories))

    async def subscriber_topics(
        self, subscriber_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[TopicDetail]:
        """One page of the topics a subscriber is in."""
        return await self._run(ops.subscriber_topics(subscriber_id, limit, cursor))

    async def token_issue(
        self, subscriber_id: str, *, expires_in: int | None = None, idempotency_key: str | None = None
    ) -> Token:
        """A subscriber JWT issued by Herald (or sign one yourself with `subscriber_token`)."""
        return await self._run(ops.token_issue(subscriber_id, expires_in, idempotency_key))

    async def topic_upsert(self, key: str, *, name: str | None = None) -> Topic:
        """Create or rename a topic."""
        return await self._run(ops.topic_upsert(key, name))

    async def topic_get(self, key: str) -> TopicDetail:
        """A topic with its subscriber count."""
        return await self._run(ops.topic_get(key))

    async def topic_delete(self, key: str) -> None:
        """Delete a topic and its memberships (subscribers and sent messages stay)."""
        return await self._run(ops.topic_delete(key))

    async def topics_list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[TopicDetail]:
        """One page of topics with their subscriber counts."""
        return await self._run(ops.topics_list(limit, cursor))

    async def topic_subscribers_add(
        self, key: str, subscriber_ids: Sequence[str], *, idempotency_key: str | None = None
    ) -> TopicSubscribersAdded:
        """Add subscribers (created if new) to a topic."""
        return await self._run(ops.topic_subscribers_add(key, subscriber_ids, idempotency_key))

    async def topic_subscriber_remove(self, key: str, subscriber_id: str) -> None:
        """Remove one subscriber from a topic."""
        return await self._run(ops.topic_subscriber_remove(key, subscriber_id))

    async def topic_subscribers(
        self, key: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Subscriber]:
        """One page of a topic's subscribers."""
        return await self._run(ops.topic_subscribers(key, limit, cursor))

    async def usage(self, *, start: date | str | None = None, end: date | str | None = None) -> Usage:
        """Messages and notifications per day (UTC), `start` to `end` inclusive."""
        return await self._run(ops.usage(start, end))
