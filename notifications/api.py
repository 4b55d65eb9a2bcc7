"""The /v1 routers: parse, call one service or selector, shape the answer.

`secret` holds the server API (secret keys), `widget` the inbox widget's API
(publishable key + subscriber proof). The pipeline in herald.api has already
authenticated the request and activated its organisation's schema.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from ninja import Path, Query, Router, Status
from ninja.decorators import decorate_view

from herald.api import (
    PublishableKey,
    SecretKey,
    json_body,
    request_fingerprint,
    secret_operation,
    widget_operation,
    widget_preflight,
)
from herald.problems import Problem
from notifications import selectors, services
from notifications.models import InboxItem
from notifications.schemas import (
    CATEGORY_PATTERN,
    KEY_PATTERN,
    SUBSCRIBER_ID_MAX_LENGTH,
    SUBSCRIBER_ID_PATTERN,
    BatchIn,
    BatchOut,
    InboxItemOut,
    InboxPage,
    MessageOut,
    NotificationAccepted,
    NotificationIn,
    PreferencesIn,
    PreferencesOut,
    ReadAllOut,
    SubscriberIn,
    SubscriberOut,
    SubscriberPage,
    TokenIn,
    TokenOut,
    TopicIn,
    TopicOut,
    TopicSubscribersAdded,
    TopicSubscribersIn,
    UnreadCount,
    UsageOut,
    inbox_item_dict,
    subscriber_payload,
)
from tenants.resolve import ResolvedKey

SubscriberIdPath = Annotated[
    str, Path(pattern=SUBSCRIBER_ID_PATTERN, min_length=1, max_length=SUBSCRIBER_ID_MAX_LENGTH)
]
TopicKeyPath = Annotated[str, Path(pattern=KEY_PATTERN, min_length=1, max_length=100)]
Limit = Annotated[int, Query(ge=1, le=100)]
CursorParam = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]

secret = Router(auth=SecretKey(), tags=["server"])
widget = Router(auth=PublishableKey(), tags=["widget"])


def _key(request: HttpRequest) -> ResolvedKey:
    return request.herald_key  # type: ignore[attr-defined, no-any-return]


# --- server API ----------------------------------------------------------------------------


def _page_out(page: selectors.Page[Any], item_out: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """A list page as every list endpoint answers it."""
    return {
        "items": [item_out(item) for item in page.items],
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    }


def _inbox_out(page: selectors.Page[InboxItem]) -> dict[str, Any]:
    return _page_out(page, inbox_item_dict)


@secret.put("/subscribers/{subscriber_id}", response=SubscriberOut, summary="Create or update a subscriber")
@decorate_view(secret_operation())
def subscriber_put(request: HttpRequest, subscriber_id: SubscriberIdPath, payload: SubscriberIn) -> dict[str, Any]:
    """Fields left out keep their value; a new subscriber starts with empty ones."""
    fields = payload.model_dump(exclude_unset=True)
    fields = {name: value for name, value in fields.items() if value is not None}
    subscriber, _ = services.subscriber_upsert(external_id=subscriber_id, fields=fields)
    return subscriber_payload(subscriber)


@secret.get("/subscribers/{subscriber_id}", response=SubscriberOut, summary="Get a subscriber")
@decorate_view(secret_operation())
def subscriber_get(request: HttpRequest, subscriber_id: SubscriberIdPath) -> dict[str, Any]:
    subscriber = selectors.subscriber_get(external_id=subscriber_id)
    if subscriber is None:
        raise Problem("not-found", "No such subscriber")
    return subscriber_payload(subscriber)


@secret.delete("/subscribers/{subscriber_id}", response={204: None}, summary="Erase a subscriber and its inbox")
@decorate_view(secret_operation())
def subscriber_delete(request: HttpRequest, subscriber_id: SubscriberIdPath) -> Status[None]:
    if not services.subscriber_delete(external_id=subscriber_id):
        raise Problem("not-found", "No such subscriber")
    return Status(204, None)


@secret.get("/subscribers", response=SubscriberPage, summary="List subscribers")
@decorate_view(secret_operation())
def subscribers_list(request: HttpRequest, limit: Limit = 50, cursor: CursorParam = None) -> dict[str, Any]:
    page = selectors.subscribers_page(cursor=cursor, limit=limit)
    return _page_out(page, subscriber_payload)


@secret.put("/topics/{key}", response=TopicOut, summary="Create or rename a topic")
@decorate_view(secret_operation())
def topic_put(request: HttpRequest, key: TopicKeyPath, payload: TopicIn) -> Any:
    topic, _ = services.topic_upsert(key=key, name=payload.name)
    return topic


def _topic_or_404(key: str) -> Any:
    topic = selectors.topic_get(key=key)
    if topic is None:
        raise Problem("not-found", f"No topic {key!r}")
    return topic


@secret.post("/topics/{key}/subscribers", response=TopicSubscribersAdded, summary="Add subscribers to a topic")
@decorate_view(secret_operation(idempotent=True))
def topic_subscribers_add(request: HttpRequest, key: TopicKeyPath, payload: TopicSubscribersIn) -> dict[str, Any]:
    """Unknown subscriber ids are created; ids already in the topic are left as they are."""
    added = services.topic_subscribers_add(
        organization_id=_key(request).organization_id, topic=_topic_or_404(key), external_ids=payload.subscriber_ids
    )
    return {"added": added}


@secret.delete(
    "/topics/{key}/subscribers/{subscriber_id}", response={204: None}, summary="Remove a subscriber from a topic"
)
@decorate_view(secret_operation())
def topic_subscriber_remove(request: HttpRequest, key: TopicKeyPath, subscriber_id: SubscriberIdPath) -> Any:
    removed = services.topic_subscriber_remove(
        organization_id=_key(request).organization_id, topic=_topic_or_404(key), external_id=subscriber_id
    )
    if not removed:
        raise Problem("not-found", "That subscriber is not in this topic")
    return Status(204, None)


@secret.get("/topics/{key}/subscribers", response=SubscriberPage, summary="List a topic's subscribers")
@decorate_view(secret_operation())
def topic_subscribers_list(
    request: HttpRequest, key: TopicKeyPath, limit: Limit = 50, cursor: CursorParam = None
) -> dict[str, Any]:
    page = selectors.topic_subscribers_page(topic=_topic_or_404(key), cursor=cursor, limit=limit)
    return _page_out(page, subscriber_payload)


@secret.post(
    "/notifications",
    response={202: NotificationAccepted},
    summary="Send a notification",
    openapi_extra={"responses": {"404": {"description": "Unknown topic"}}},
)
@decorate_view(secret_operation(idempotent=True))
def notification_send(request: HttpRequest, payload: NotificationIn) -> Status[dict[str, Any]]:
    """Answered once the message and every inbox item are committed. Opted-out subscribers are left out."""
    result = services.notification_send(organization_id=_key(request).organization_id, draft=payload.draft())
    return Status(202, result.as_dict())


@secret.post("/notifications/batch", response=BatchOut, summary="Send up to 100 notifications")
@decorate_view(secret_operation(idempotent=True))
def notification_send_batch(request: HttpRequest, payload: BatchIn) -> dict[str, Any]:
    """One result per item, in order; an item is written whole or not at all, independently of the others.

    An item's `idempotency_key` works like the Idempotency-Key header of POST /v1/notifications
    (and shares its keys): the same key with the same item replays the first result.
    """
    raw_items = json_body(request)["notifications"]
    drafts = []
    for item, raw in zip(payload.notifications, raw_items, strict=True):
        content = {name: value for name, value in raw.items() if name != "idempotency_key"}
        drafts.append(item.draft(idempotency_key=item.idempotency_key, request_hash=request_fingerprint(content)))
    outcomes = services.notification_send_batch(organization_id=_key(request).organization_id, drafts=drafts)
    results = []
    for outcome in outcomes:
        entry: dict[str, Any] = {"index": outcome.index, "status": outcome.status, "replayed": outcome.replayed}
        if outcome.result is not None:
            entry.update(outcome.result.as_dict())
        if outcome.problem is not None:
            kind = outcome.problem.problem_type
            entry["error"] = {
                "type": kind.uri,
                "title": kind.title,
                "status": kind.status,
                "detail": outcome.problem.detail,
            }
        results.append(entry)
    return {"results": results}


@secret.get(
    "/subscribers/{subscriber_id}/notifications", response=InboxPage, summary="List a subscriber's notifications"
)
@decorate_view(secret_operation())
def subscriber_notifications(
    request: HttpRequest,
    subscriber_id: SubscriberIdPath,
    limit: Limit = 50,
    cursor: CursorParam = None,
    read: bool | None = None,
    archived: bool | None = False,
    category: Annotated[str | None, Query(pattern=CATEGORY_PATTERN)] = None,
) -> dict[str, Any]:
    """Newest first. `read=true|false` filters on read state; archived items only with `archived=true`."""
    pk = selectors.subscriber_pk(external_id=subscriber_id)
    if pk is None:
        raise Problem("not-found", "No such subscriber")
    page = selectors.inbox_page(
        subscriber_pk=pk, cursor=cursor, limit=limit, read=read, archived=archived, category=category
    )
    return _inbox_out(page)


@secret.get("/messages/{message_id}", response=MessageOut, summary="Get a message and its delivery counts")
@decorate_view(secret_operation())
def message_get(request: HttpRequest, message_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    found = selectors.message_get(message_id=message_id)
    if found is None:
        raise Problem("not-found", "No such message")
    message = found.message
    return {
        "id": str(message.id),
        "seq": message.seq,
        "audience": message.audience,
        "topic": found.topic_key,
        "title": message.title,
        "body": message.body,
        "action_url": message.action_url,
        "category": message.category,
        "data": message.data,
        "created_at": message.created_at,
        "delivery": {
            "recipients": message.recipient_count,
            "delivered": found.delivered,
            "seen": found.seen,
            "read": found.read,
            "archived": found.archived,
            "unread": found.delivered - found.read,
        },
    }


@secret.post("/subscribers/{subscriber_id}/tokens", response=TokenOut, summary="Issue a subscriber token")
@decorate_view(secret_operation(idempotent=True))
def subscriber_token_issue(
    request: HttpRequest, subscriber_id: SubscriberIdPath, payload: TokenIn | None = None
) -> dict[str, Any]:
    """A short-lived HS256 JWT for the widget (`sub` = subscriber id), signed with the current signing secret."""
    from notifications.proofs import subscriber_token
    from tenants.selectors import signing_secrets_live

    if selectors.subscriber_pk(external_id=subscriber_id) is None:
        raise Problem("not-found", "No such subscriber")
    secrets = signing_secrets_live(_key(request).organization_id)
    if not secrets:  # pragma: no cover - every organisation is created with one
        raise Problem("internal-error", "The organisation has no signing secret")
    expires_at = datetime.now(tz=UTC).replace(microsecond=0) + timedelta(
        seconds=(payload.expires_in if payload else 3600)
    )
    return {
        "token": subscriber_token(secrets[0], subscriber_id, expires_at),
        "subscriber_id": subscriber_id,
        "expires_at": expires_at,
    }


@secret.get("/usage", response=UsageOut, summary="Daily usage", by_alias=True)
@decorate_view(secret_operation())
def usage(
    request: HttpRequest,
    start: Annotated[
        date | None, Query(alias="from", description="first day (UTC), default 29 days before `to`")
    ] = None,
    end: Annotated[date | None, Query(alias="to", description="last day (UTC), default today")] = None,
) -> dict[str, Any]:
    """Messages sent and notifications written per day, read from the stored messages."""
    end = end or datetime.now(tz=UTC).date()
    start = start or end - timedelta(days=29)
    if start > end or (end - start).days > 366:
        raise Problem("validation-error", "`from` must not be after `to`, and the range at most 367 days")
    days = selectors.usage_daily(start=start, end=end)
    return {
        "from": start,
        "to": end,
        "days": days,
        "messages": sum(d["messages"] for d in days),
        "notifications": sum(d["notifications"] for d in days),
    }


# --- widget API -------------------------------------------------------------------------------


def _subscriber_id(request: HttpRequest) -> str:
    return request.herald_subscriber_id  # type: ignore[attr-defined, no-any-return]


def _widget_pk(request: HttpRequest) -> int | None:
    return selectors.subscriber_pk(external_id=_subscriber_id(request))


@widget.get("/inbox/notifications", response=InboxPage, summary="The subscriber's inbox")
@decorate_view(widget_operation)
def inbox_list(
    request: HttpRequest,
    limit: Limit = 50,
    cursor: CursorParam = None,
    read: bool | None = None,
    archived: bool | None = False,
    category: Annotated[str | None, Query(pattern=CATEGORY_PATTERN)] = None,
) -> dict[str, Any]:
    """Newest first; archived items only with `archived=true`."""
    page = selectors.inbox_page(
        subscriber_pk=_widget_pk(request), cursor=cursor, limit=limit, read=read, archived=archived, category=category
    )
    return _inbox_out(page)


@widget.get("/inbox/unread-count", response=UnreadCount, summary="The subscriber's unread count")
@decorate_view(widget_operation)
def inbox_unread_count(request: HttpRequest) -> dict[str, Any]:
    return {"count": selectors.unread_count(subscriber_pk=_widget_pk(request))}


def _mark(request: HttpRequest, message_id: str, action: str) -> dict[str, Any]:
    pk = _widget_pk(request)
    if pk is None:
        raise Problem("not-found", "No such notification in this inbox")
    item = services.inbox_item_mark(
        organization_id=_key(request).organization_id, subscriber_pk=pk, message_id=message_id, action=action
    )
    return inbox_item_dict(item)


MessageIdPath = Annotated[str, Path(max_length=64, description="the notification's (message's) id")]


@widget.post("/inbox/notifications/{message_id}/read", response=InboxItemOut, summary="Mark read")
@decorate_view(widget_operation)
def inbox_mark_read(request: HttpRequest, message_id: MessageIdPath) -> dict[str, Any]:
    return _mark(request, message_id, "read")


@widget.post("/inbox/notifications/{message_id}/unread", response=InboxItemOut, summary="Mark unread")
@decorate_view(widget_operation)
def inbox_mark_unread(request: HttpRequest, message_id: MessageIdPath) -> dict[str, Any]:
    return _mark(request, message_id, "unread")


@widget.post("/inbox/notifications/{message_id}/archive", response=InboxItemOut, summary="Archive")
@decorate_view(widget_operation)
def inbox_archive(request: HttpRequest, message_id: MessageIdPath) -> dict[str, Any]:
    return _mark(request, message_id, "archive")


@widget.post("/inbox/read-all", response=ReadAllOut, summary="Mark everything read")
@decorate_view(widget_operation)
def inbox_read_all(request: HttpRequest) -> dict[str, Any]:
    pk = _widget_pk(request)
    marked = (
        0 if pk is None else services.inbox_read_all(organization_id=_key(request).organization_id, subscriber_pk=pk)
    )
    return {"marked": marked, "unread_count": selectors.unread_count(subscriber_pk=pk)}


@widget.get("/inbox/preferences", response=PreferencesOut, summary="The subscriber's category preferences")
@decorate_view(widget_operation)
def preferences_get(request: HttpRequest) -> dict[str, Any]:
    return {"categories": selectors.preferences_get(subscriber_pk=_widget_pk(request))}


@widget.put("/inbox/preferences", response=PreferencesOut, summary="Opt in or out of categories")
@decorate_view(widget_operation)
def preferences_put(request: HttpRequest, payload: PreferencesIn) -> dict[str, Any]:
    """Categories listed are set; others keep their state. Sending respects opt-outs at once."""
    categories = services.preferences_set(
        organization_id=_key(request).organization_id,
        external_id=_subscriber_id(request),
        categories=payload.categories,
    )
    return {"categories": categories}


# CORS preflights (no credentials travel with them; see herald.api.widget_preflight).
def _preflight(request: HttpRequest) -> HttpResponse:
    return widget_preflight(request)


def _preflight_item(request: HttpRequest, message_id: str) -> HttpResponse:
    return widget_preflight(request)


for _path in ("/inbox/notifications", "/inbox/unread-count", "/inbox/read-all", "/inbox/preferences"):
    widget.add_api_operation(_path, ["OPTIONS"], _preflight, auth=None, include_in_schema=False)
for _action in ("read", "unread", "archive"):
    widget.add_api_operation(
        f"/inbox/notifications/{{message_id}}/{_action}",
        ["OPTIONS"],
        _preflight_item,
        auth=None,
        include_in_schema=False,
    )
