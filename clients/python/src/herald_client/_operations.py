"""Every server-API operation as a `Call`: built once here, carried out by the sync or the async client."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from herald_client._core import Call, as_type, make_call, parse_none, segment
from herald_client.types import (
    BatchResult,
    InboxAction,
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

INBOX_ACTIONS = ("read", "unread", "archive", "unarchive")


def _given(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def notification(
    *,
    title: str,
    to: Sequence[str] | None = None,
    topic: str | None = None,
    broadcast: bool | None = None,
    body: str | None = None,
    action_url: str | None = None,
    category: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One notification's JSON: exactly one audience (`to`, `topic` or `broadcast=True`) and its content."""
    return _given(
        to=list(to) if to is not None else None,
        topic=topic,
        broadcast=broadcast,
        title=title,
        body=body,
        action_url=action_url,
        category=category,
        data=data,
    )


def send(notification_json: dict[str, Any], idempotency_key: str | None) -> Call[NotificationAccepted]:
    return make_call(
        "POST",
        "/v1/notifications",
        as_type(NotificationAccepted),
        json=notification_json,
        idempotency_key=idempotency_key,
    )


def send_batch(notifications: Sequence[dict[str, Any]], idempotency_key: str | None) -> Call[BatchResult]:
    return make_call(
        "POST",
        "/v1/notifications/batch",
        as_type(BatchResult),
        json={"notifications": list(notifications)},
        idempotency_key=idempotency_key,
    )


def message_get(message_id: str) -> Call[Message]:
    return make_call("GET", f"/v1/messages/{segment(message_id)}", as_type(Message))


def subscriber_upsert(subscriber_id: str, fields: dict[str, Any]) -> Call[Subscriber]:
    return make_call("PUT", f"/v1/subscribers/{segment(subscriber_id)}", as_type(Subscriber), json=fields)


def subscriber_get(subscriber_id: str) -> Call[Subscriber]:
    return make_call("GET", f"/v1/subscribers/{segment(subscriber_id)}", as_type(Subscriber))


def subscriber_delete(subscriber_id: str) -> Call[None]:
    return make_call("DELETE", f"/v1/subscribers/{segment(subscriber_id)}", parse_none)


def subscribers_list(limit: int | None, cursor: str | None) -> Call[Page[Subscriber]]:
    return make_call("GET", "/v1/subscribers", as_type(Page[Subscriber]), params={"limit": limit, "cursor": cursor})


def subscriber_notifications(
    subscriber_id: str,
    *,
    limit: int | None,
    cursor: str | None,
    read: bool | None,
    archived: bool | None,
    category: str | None,
) -> Call[Page[InboxItem]]:
    params = {
        "limit": limit,
        "cursor": cursor,
        "read": None if read is None else str(read).lower(),
        "archived": None if archived is None else str(archived).lower(),
        "category": category,
    }
    return make_call(
        "GET", f"/v1/subscribers/{segment(subscriber_id)}/notifications", as_type(Page[InboxItem]), params=params
    )


def inbox_mark(
    subscriber_id: str, message_id: str, action: InboxAction, idempotency_key: str | None
) -> Call[InboxItem]:
    if action not in INBOX_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(INBOX_ACTIONS)}")
    path = f"/v1/subscribers/{segment(subscriber_id)}/notifications/{segment(message_id)}/{action}"
    return make_call("POST", path, as_type(InboxItem), idempotency_key=idempotency_key)


def inbox_read_all(subscriber_id: str, idempotency_key: str | None) -> Call[ReadAll]:
    path = f"/v1/subscribers/{segment(subscriber_id)}/notifications/read-all"
    return make_call("POST", path, as_type(ReadAll), idempotency_key=idempotency_key)


def preferences_get(subscriber_id: str) -> Call[Preferences]:
    return make_call("GET", f"/v1/subscribers/{segment(subscriber_id)}/preferences", as_type(Preferences))


def preferences_set(subscriber_id: str, categories: dict[str, bool]) -> Call[Preferences]:
    return make_call(
        "PUT",
        f"/v1/subscribers/{segment(subscriber_id)}/preferences",
        as_type(Preferences),
        json={"categories": dict(categories)},
    )


def subscriber_topics(subscriber_id: str, limit: int | None, cursor: str | None) -> Call[Page[TopicDetail]]:
    return make_call(
        "GET",
        f"/v1/subscribers/{segment(subscriber_id)}/topics",
        as_type(Page[TopicDetail]),
        params={"limit": limit, "cursor": cursor},
    )


def token_issue(subscriber_id: str, expires_in: int | None, idempotency_key: str | None) -> Call[Token]:
    return make_call(
        "POST",
        f"/v1/subscribers/{segment(subscriber_id)}/tokens",
        as_type(Token),
        json=_given(expires_in=expires_in),
        idempotency_key=idempotency_key,
    )


def topic_upsert(key: str, name: str | None) -> Call[Topic]:
    return make_call("PUT", f"/v1/topics/{segment(key)}", as_type(Topic), json=_given(name=name))


def topic_get(key: str) -> Call[TopicDetail]:
    return make_call("GET", f"/v1/topics/{segment(key)}", as_type(TopicDetail))


def topic_delete(key: str) -> Call[None]:
    return make_call("DELETE", f"/v1/topics/{segment(key)}", parse_none)


def topics_list(limit: int | None, cursor: str | None) -> Call[Page[TopicDetail]]:
    return make_call("GET", "/v1/topics", as_type(Page[TopicDetail]), params={"limit": limit, "cursor": cursor})


def topic_subscribers_add(
    key: str, subscriber_ids: Sequence[str], idempotency_key: str | None
) -> Call[TopicSubscribersAdded]:
    return make_call(
        "POST",
        f"/v1/topics/{segment(key)}/subscribers",
        as_type(TopicSubscribersAdded),
        json={"subscriber_ids": list(subscriber_ids)},
        idempotency_key=idempotency_key,
    )


def topic_subscriber_remove(key: str, subscriber_id: str) -> Call[None]:
    return make_call("DELETE", f"/v1/topics/{segment(key)}/subscribers/{segment(subscriber_id)}", parse_none)


def topic_subscribers(key: str, limit: int | None, cursor: str | None) -> Call[Page[Subscriber]]:
    return make_call(
        "GET",
        f"/v1/topics/{segment(key)}/subscribers",
        as_type(Page[Subscriber]),
        params={"limit": limit, "cursor": cursor},
    )


def usage(start: date | str | None, end: date | str | None) -> Call[Usage]:
    params = {"from": None if start is None else str(start), "to": None if end is None else str(end)}
    return make_call("GET", "/v1/usage", as_type(Usage), params=params)
