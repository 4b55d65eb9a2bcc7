"""The /v1 routers: parse, call one service or selector, shape the answer.

`secret` holds the server API (secret keys), `widget` the inbox widget's API
(publishable key + subscriber proof). The pipeline in herald.operations has already
authenticated the request and activated its organisation's schema. Sends go
through the send engine (notifications.sending), here and in notifications.lean.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from ninja import Path, Query, Router, Status
from ninja.decorators import decorate_view

from herald.errors import json_body
from herald.openapi import PublishableKey, SecretKey
from herald.operations import secret_operation, widget_operation, widget_preflight
from herald.problems import Problem
from notifications import inbox, selectors, sending, services, subscribing, topics
from notifications.idempotency import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    idempotency_claim_from_header,
)
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
    SubscribersImportIn,
    SubscribersImportOut,
    TokenIn,
    TokenOut,
    TopicDetailOut,
    TopicIn,
    TopicOut,
    TopicPage,
    TopicSubscribersAdded,
    TopicSubscribersIn,
    UnreadCount,
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
MessageIdPath = Annotated[str, Path(max_length=64, description="the notification's (message's) id")]

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


def _tenant(request: HttpRequest) -> subscribing.Tenant:
    key = _key(request)
    return subscribing.Tenant(organization_id=key.organization_id, schema_name=key.schema_name)


# These routes run notifications.subscribing (the event loop's psycopg pool, the schema named in the SQL); in the
# server notifications.lean serves them before Django with the same functions and answers.
@secret.post(
    "/subscribers/bulk",
    response=SubscribersImportOut,
    summary="Create or update up to 1,000 subscribers",
)
@decorate_view(secret_operation(idempotent=True))
def subscribers_import(request: HttpRequest, payload: SubscribersImportIn) -> dict[str, Any]:
    """Upsert semantics, as PUT /v1/subscribers/{id} for each item; one result per item, in order.

    Only POST is served at this exact path: a subscriber whose id is `bulk` is still read, updated and erased
    with GET, PUT and DELETE /v1/subscribers/bulk."""
    _, body, _ = sending.run_blocking(
        subscribing.subscribers_import(
            tenant=_tenant(request), subscribers=[(item.id, item.fields()) for item in payload.subscribers]
        )
    )
    return body  # type: ignore[no-any-return]


def _subscriber_put(request: HttpRequest, subscriber_id: str, payload: SubscriberIn) -> dict[str, Any]:
    fields = payload.model_dump(exclude_unset=True)
    fields = {name: value for name, value in fields.items() if value is not None}
    return sending.run_blocking(
        subscribing.subscriber_upsert(tenant=_tenant(request), external_id=subscriber_id, fields=fields)
    )


def _subscriber_get(request: HttpRequest, subscriber_id: str) -> dict[str, Any]:
    subscriber = sending.run_blocking(subscribing.subscriber_get(tenant=_tenant(request), external_id=subscriber_id))
    if subscriber is None:
        raise Problem("not-found", "No such subscriber")
    return subscriber


def _subscriber_delete(request: HttpRequest, subscriber_id: str) -> Status[None]:
    if not sending.run_blocking(subscribing.subscriber_delete(tenant=_tenant(request), external_id=subscriber_id)):
        raise Problem("not-found", "No such subscriber")
    return Status(204, None)


@secret.put("/subscribers/{subscriber_id}", response=SubscriberOut, summary="Create or update a subscriber")
@decorate_view(secret_operation())
def subscriber_put(request: HttpRequest, subscriber_id: SubscriberIdPath, payload: SubscriberIn) -> dict[str, Any]:
    """Fields left out keep their value; a new subscriber starts with empty ones."""
    return _subscriber_put(request, subscriber_id, payload)


@secret.get("/subscribers/{subscriber_id}", response=SubscriberOut, summary="Get a subscriber")
@decorate_view(secret_operation())
def subscriber_get(request: HttpRequest, subscriber_id: SubscriberIdPath) -> dict[str, Any]:
    return _subscriber_get(request, subscriber_id)


@secret.delete("/subscribers/{subscriber_id}", response={204: None}, summary="Erase a subscriber and its inbox")
@decorate_view(secret_operation())
def subscriber_delete(request: HttpRequest, subscriber_id: SubscriberIdPath) -> Status[None]:
    return _subscriber_delete(request, subscriber_id)


# Django routes /v1/subscribers/bulk to the import above whatever the method: the subscriber named `bulk` is
# served here for the other methods (not in the OpenAPI document, which has /v1/subscribers/{subscriber_id}).
@decorate_view(secret_operation())
def _bulk_named_get(request: HttpRequest) -> Any:
    return _subscriber_get(request, "bulk")


@decorate_view(secret_operation())
def _bulk_named_put(request: HttpRequest, payload: SubscriberIn) -> Any:
    return _subscriber_put(request, "bulk", payload)


@decorate_view(secret_operation())
def _bulk_named_delete(request: HttpRequest) -> Any:
    return _subscriber_delete(request, "bulk")


secret.add_api_operation("/subscribers/bulk", ["GET"], _bulk_named_get, response=SubscriberOut, include_in_schema=False)
secret.add_api_operation("/subscribers/bulk", ["PUT"], _bulk_named_put, response=SubscriberOut, include_in_schema=False)
secret.add_api_operation(
    "/subscribers/bulk", ["DELETE"], _bulk_named_delete, response={204: None}, include_in_schema=False
)


@secret.get("/subscribers", response=SubscriberPage, summary="List subscribers")
@decorate_view(secret_operation())
def subscribers_list(request: HttpRequest, limit: Limit = 50, cursor: CursorParam = None) -> dict[str, Any]:
    page = selectors.subscribers_page(cursor=cursor, limit=limit)
    return _page_out(page, subscriber_payload)


# Topic create/rename and membership run notifications.topics (the event loop's psycopg pool, the schema named
# in the SQL); in the server notifications.lean serves them before Django with the same functions and answers.
@secret.put("/topics/{key}", response=TopicOut, summary="Create or rename a topic")
@decorate_view(secret_operation())
def topic_put(request: HttpRequest, key: TopicKeyPath, payload: TopicIn) -> Any:
    return sending.run_blocking(topics.topic_upsert(tenant=_tenant(request), key=key, name=payload.name))


def _topic_or_404(key: str) -> Any:
    topic = selectors.topic_get(key=key)
    if topic is None:
        raise Problem("not-found", f"No topic {key!r}")
    return topic


@secret.post("/topics/{key}/subscribers", response=TopicSubscribersAdded, summary="Add subscribers to a topic")
@decorate_view(secret_operation(idempotent=True))
def topic_subscribers_add(request: HttpRequest, key: TopicKeyPath, payload: TopicSubscribersIn) -> dict[str, Any]:
    """Unknown subscriber ids are created; ids already in the topic are left as they are."""
    _, body, _ = sending.run_blocking(
        topics.topic_subscribers_add(tenant=_tenant(request), key=key, external_ids=payload.subscriber_ids)
    )
    return body  # type: ignore[no-any-return]


@secret.delete(
    "/topics/{key}/subscribers/{subscriber_id}", response={204: None}, summary="Remove a subscriber from a topic"
)
@decorate_view(secret_operation())
def topic_subscriber_remove(request: HttpRequest, key: TopicKeyPath, subscriber_id: SubscriberIdPath) -> Any:
    sending.run_blocking(topics.topic_subscriber_remove(tenant=_tenant(request), key=key, external_id=subscriber_id))
    return Status(204, None)


@secret.get("/topics/{key}/subscribers", response=SubscriberPage, summary="List a topic's subscribers")
@decorate_view(secret_operation())
def topic_subscribers_list(
    request: HttpRequest, key: TopicKeyPath, limit: Limit = 50, cursor: CursorParam = None
) -> dict[str, Any]:
    page = selectors.topic_subscribers_page(topic=_topic_or_404(key), cursor=cursor, limit=limit)
    return _page_out(page, subscriber_payload)


_SEND_ERRORS = {
    "404": {"description": "Unknown topic"},
    "503": {"description": "The database did not answer; nothing was written: retry after Retry-After"},
}


def _sender(request: HttpRequest) -> sending.Sender:
    return sending.Sender.for_key(_key(request), touch=False)  # the pipeline touched last_used_at


def _send_response(answer: sending.SendAnswer) -> HttpResponse:
    response = HttpResponse(json.dumps(answer.body), status=answer.status, content_type="application/json")
    if answer.replayed:
        response[REPLAYED_HEADER] = "true"
    return response


# In the server, notifications.lean answers these two routes before Django (same engine, same answers);
# these views serve them wherever Django alone serves /v1 (and describe them in the OpenAPI document).
@secret.post(
    "/notifications",
    response={202: NotificationAccepted},
    summary="Send a notification",
    openapi_extra={"responses": _SEND_ERRORS},
)
@decorate_view(secret_operation())
def notification_send(request: HttpRequest, payload: NotificationIn) -> HttpResponse:
    """Answered once the message and every inbox item are committed. Opted-out subscribers are left out."""
    claim = idempotency_claim_from_header(
        path=request.path, header=request.headers.get(IDEMPOTENCY_HEADER), data=json_body(request)
    )
    answer = sending.notification_send_blocking(sender=_sender(request), draft=payload.draft(), idempotency=claim)
    return _send_response(answer)


@secret.post(
    "/notifications/batch",
    response=BatchOut,
    summary="Send up to 100 notifications",
    openapi_extra={"responses": {"503": _SEND_ERRORS["503"]}},
)
@decorate_view(secret_operation())
def notification_send_batch(request: HttpRequest, payload: BatchIn) -> HttpResponse:
    """One result per item, in order; an item is written whole or not at all, independently of the others.

    An item's `idempotency_key` works like the Idempotency-Key header of POST /v1/notifications
    (and shares its keys): the same key with the same item replays the first result.
    """
    data = json_body(request)
    claim = idempotency_claim_from_header(path=request.path, header=request.headers.get(IDEMPOTENCY_HEADER), data=data)
    answer = sending.notification_send_batch_blocking(
        sender=_sender(request), drafts=payload.drafts(data), idempotency=claim
    )
    return _send_response(answer)


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
    _, body, _ = sending.run_blocking(
        subscribing.subscriber_token_issue(
            tenant=_tenant(request), external_id=subscriber_id, expires_in=payload.expires_in if payload else 3600
        )
    )
    return body  # type: ignore[no-any-return]


# --- server API: a subscriber's inbox and preferences, topic reads and deletion ----------------
# The same services as the widget routes below, so a subscriber's open sockets and tabs follow the change.


def _topic_out(topic: Any) -> dict[str, Any]:
    return {
        "key": topic.key,
        "name": topic.name,
        "created_at": topic.created_at,
        "subscriber_count": topic.subscriber_count,
    }


def _subscriber_pk_or_404(subscriber_id: str) -> int:
    pk = selectors.subscriber_pk(external_id=subscriber_id)
    if pk is None:
        raise Problem("not-found", "No such subscriber")
    return pk


def _server_mark(request: HttpRequest, subscriber_id: str, message_id: str, action: str) -> dict[str, Any]:
    pk = _subscriber_pk_or_404(subscriber_id)
    item = services.inbox_item_mark(
        organization_id=_key(request).organization_id, subscriber_pk=pk, message_id=message_id, action=action
    )
    return inbox_item_dict(item)


_SERVER_MARKS = {
    "read": "Mark a subscriber's notification read",
    "unread": "Mark a subscriber's notification unread",
    "archive": "Archive a subscriber's notification",
    "unarchive": "Unarchive a subscriber's notification",
}


@secret.post(
    "/subscribers/{subscriber_id}/notifications/{message_id}/read", response=InboxItemOut, summary=_SERVER_MARKS["read"]
)
@decorate_view(secret_operation(idempotent=True))
def subscriber_notification_read(
    request: HttpRequest, subscriber_id: SubscriberIdPath, message_id: MessageIdPath
) -> dict[str, Any]:
    """Also marks it seen. The subscriber's open widgets update at once."""
    return _server_mark(request, subscriber_id, message_id, "read")


@secret.post(
    "/subscribers/{subscriber_id}/notifications/{message_id}/unread",
    response=InboxItemOut,
    summary=_SERVER_MARKS["unread"],
)
@decorate_view(secret_operation(idempotent=True))
def subscriber_notification_unread(
    request: HttpRequest, subscriber_id: SubscriberIdPath, message_id: MessageIdPath
) -> dict[str, Any]:
    return _server_mark(request, subscriber_id, message_id, "unread")


@secret.post(
    "/subscribers/{subscriber_id}/notifications/{message_id}/archive",
    response=InboxItemOut,
    summary=_SERVER_MARKS["archive"],
)
@decorate_view(secret_operation(idempotent=True))
def subscriber_notification_archive(
    request: HttpRequest, subscriber_id: SubscriberIdPath, message_id: MessageIdPath
) -> dict[str, Any]:
    return _server_mark(request, subscriber_id, message_id, "archive")


@secret.post(
    "/subscribers/{subscriber_id}/notifications/{message_id}/unarchive",
    response=InboxItemOut,
    summary=_SERVER_MARKS["unarchive"],
)
@decorate_view(secret_operation(idempotent=True))
def subscriber_notification_unarchive(
    request: HttpRequest, subscriber_id: SubscriberIdPath, message_id: MessageIdPath
) -> dict[str, Any]:
    return _server_mark(request, subscriber_id, message_id, "unarchive")


@secret.post(
    "/subscribers/{subscriber_id}/notifications/read-all",
    response=ReadAllOut,
    summary="Mark all of a subscriber's notifications read",
)
@decorate_view(secret_operation(idempotent=True))
def subscriber_notifications_read_all(request: HttpRequest, subscriber_id: SubscriberIdPath) -> dict[str, Any]:
    pk = _subscriber_pk_or_404(subscriber_id)
    marked = services.inbox_read_all(organization_id=_key(request).organization_id, subscriber_pk=pk)
    return {"marked": marked, "unread_count": selectors.unread_count(subscriber_pk=pk)}


@secret.get(
    "/subscribers/{subscriber_id}/preferences",
    response=PreferencesOut,
    summary="A subscriber's category preferences",
)
@decorate_view(secret_operation())
def subscriber_preferences_get(request: HttpRequest, subscriber_id: SubscriberIdPath) -> dict[str, Any]:
    return {"categories": selectors.preferences_get(subscriber_pk=_subscriber_pk_or_404(subscriber_id))}


@secret.put(
    "/subscribers/{subscriber_id}/preferences",
    response=PreferencesOut,
    summary="Opt a subscriber in or out of categories",
)
@decorate_view(secret_operation())
def subscriber_preferences_put(
    request: HttpRequest, subscriber_id: SubscriberIdPath, payload: PreferencesIn
) -> dict[str, Any]:
    """Categories listed are set; others keep their state. An unknown subscriber is created, as with PUT."""
    categories = services.preferences_set(
        organization_id=_key(request).organization_id, external_id=subscriber_id, categories=payload.categories
    )
    return {"categories": categories}


@secret.get("/subscribers/{subscriber_id}/topics", response=TopicPage, summary="List a subscriber's topics")
@decorate_view(secret_operation())
def subscriber_topics_list(
    request: HttpRequest, subscriber_id: SubscriberIdPath, limit: Limit = 50, cursor: CursorParam = None
) -> dict[str, Any]:
    page = selectors.subscriber_topics_page(
        subscriber_pk=_subscriber_pk_or_404(subscriber_id), cursor=cursor, limit=limit
    )
    return _page_out(page, _topic_out)


@secret.get("/topics", response=TopicPage, summary="List topics")
@decorate_view(secret_operation())
def topics_list(request: HttpRequest, limit: Limit = 50, cursor: CursorParam = None) -> dict[str, Any]:
    """In creation order, each with its subscriber count."""
    return _page_out(selectors.topics_page(cursor=cursor, limit=limit), _topic_out)


@secret.get("/topics/{key}", response=TopicDetailOut, summary="Get a topic")
@decorate_view(secret_operation())
def topic_get(request: HttpRequest, key: TopicKeyPath) -> dict[str, Any]:
    topic = selectors.topic_get_counted(key=key)
    if topic is None:
        raise Problem("not-found", f"No topic {key!r}")
    return _topic_out(topic)


@secret.delete("/topics/{key}", response={204: None}, summary="Delete a topic")
@decorate_view(secret_operation())
def topic_delete(request: HttpRequest, key: TopicKeyPath) -> Status[None]:
    """Its subscribers leave it (they are not erased); messages already sent stay in their inboxes."""
    if not services.topic_delete(organization_id=_key(request).organization_id, key=key):
        raise Problem("not-found", f"No topic {key!r}")
    return Status(204, None)


# --- widget API -------------------------------------------------------------------------------


def _subscriber_id(request: HttpRequest) -> str:
    return request.herald_subscriber_id  # type: ignore[attr-defined, no-any-return]


def _widget_pk(request: HttpRequest) -> int | None:
    return selectors.subscriber_pk(external_id=_subscriber_id(request))


# The inbox routes run notifications.inbox (the event loop's psycopg pool, the schema named in the SQL).
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
    page = sending.run_blocking(
        inbox.inbox_page(
            tenant=_tenant(request),
            subscriber_id=_subscriber_id(request),
            cursor=cursor,
            limit=limit,
            read=read,
            archived=archived,
            category=category,
        )
    )
    return _page_out(page, lambda item: item)


@widget.get("/inbox/unread-count", response=UnreadCount, summary="The subscriber's unread count")
@decorate_view(widget_operation)
def inbox_unread_count(request: HttpRequest) -> dict[str, Any]:
    count = sending.run_blocking(inbox.unread_count(tenant=_tenant(request), subscriber_id=_subscriber_id(request)))
    return {"count": count}


def _mark(request: HttpRequest, message_id: str, action: str) -> dict[str, Any]:
    return sending.run_blocking(
        inbox.inbox_item_mark(
            tenant=_tenant(request), subscriber_id=_subscriber_id(request), message_id=message_id, action=action
        )
    )


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
    return sending.run_blocking(inbox.inbox_read_all(tenant=_tenant(request), subscriber_id=_subscriber_id(request)))


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


# CORS preflights (no credentials travel with them; see herald.operations.widget_preflight).
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
