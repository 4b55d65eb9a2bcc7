"""The /v1 routers: parse, call one service or selector, shape the answer.

`secret` holds the server API (secret keys), `widget` the inbox widget's API
(publishable key + subscriber proof). The pipeline in herald.operations has already
authenticated the request and activated its organisation's schema. Sends go
through the send engine (notifications.sending), here and in notifications.lean.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse
from ninja import Field, Path, Query, Router, Status
from ninja.decorators import decorate_view
from pydantic import BaseModel, ConfigDict, StrictBool, field_validator, model_validator

from herald.errors import json_body
from herald.openapi import PublishableKey, SecretKey
from herald.operations import secret_operation, widget_operation, widget_preflight
from herald.problems import Problem
from notifications import selectors, sending, services
from notifications.idempotency import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    IdempotencyClaim,
    idempotency_claim_from_header,
    request_fingerprint,
)
from notifications.models import InboxItem, Subscriber
from notifications.schemas import inbox_item_dict
from tenants.resolve import ResolvedKey

SUBSCRIBER_ID_PATTERN = r"^[^\x00-\x1f\x7f/]{1,255}$"
KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
CATEGORY_PATTERN = r"^[A-Za-z0-9_.:-]{0,100}$"
MAX_DATA_BYTES = 32 * 1024

SubscriberId = Annotated[str, Field(pattern=SUBSCRIBER_ID_PATTERN, min_length=1, max_length=255)]
TopicKey = Annotated[str, Field(pattern=KEY_PATTERN, min_length=1, max_length=100)]
Category = Annotated[str, Field(pattern=CATEGORY_PATTERN, max_length=100)]
SubscriberIdPath = Annotated[str, Path(pattern=SUBSCRIBER_ID_PATTERN, min_length=1, max_length=255)]
TopicKeyPath = Annotated[str, Path(pattern=KEY_PATTERN, min_length=1, max_length=100)]
Limit = Annotated[int, Query(ge=1, le=100)]
CursorParam = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]

secret = Router(auth=SecretKey(), tags=["server"])
widget = Router(auth=PublishableKey(), tags=["widget"])


def _key(request: HttpRequest) -> ResolvedKey:
    return request.herald_key  # type: ignore[attr-defined, no-any-return]


def _no_nul(value: Any) -> Any:
    if "\\u0000" in json.dumps(value):
        raise ValueError("must not contain NUL characters")
    return value


def _data_check(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, separators=(",", ":"))) > MAX_DATA_BYTES:
        raise ValueError(f"data must be at most {MAX_DATA_BYTES} bytes of JSON")
    return value


# Plain pydantic models: django-ninja's Schema adds a per-object validator for
# Django model attributes that these dicts do not need (measured: ~40% of a batch's validation).
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- schemas ------------------------------------------------------------------------------


class SubscriberIn(Strict):
    name: str | None = Field(None, max_length=255)
    email: str | None = Field(None, max_length=254, description="empty string to clear")
    locale: str | None = Field(None, max_length=35, pattern=r"^[A-Za-z0-9_-]{0,35}$")
    data: dict[str, Any] | None = Field(None, description="custom JSON object, up to 32 KiB")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value:
            try:
                validate_email(value)
            except DjangoValidationError:
                raise ValueError("not a valid email address") from None
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return _no_nul(value) if value is not None else None

    @field_validator("data")
    @classmethod
    def _data(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _data_check(value) if value is not None else None


class SubscriberOut(Out):
    id: str
    name: str
    email: str
    locale: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _subscriber_out(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "id": subscriber.external_id,
        "name": subscriber.name,
        "email": subscriber.email,
        "locale": subscriber.locale,
        "data": subscriber.data,
        "created_at": subscriber.created_at,
        "updated_at": subscriber.updated_at,
    }


class SubscriberPage(Out):
    items: list[SubscriberOut]
    next_cursor: str | None
    has_more: bool


class TopicIn(Strict):
    name: str | None = Field(None, max_length=255)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return _no_nul(value) if value is not None else None


class TopicOut(Out):
    key: str
    name: str
    created_at: datetime


class TopicSubscribersIn(Strict):
    subscriber_ids: list[SubscriberId] = Field(..., min_length=1, max_length=1000)


class TopicSubscribersAdded(Out):
    added: int


class NotificationIn(Strict):
    """Exactly one audience (`to`, `topic` or `broadcast: true`), and the content."""

    to: list[SubscriberId] | None = Field(
        None, min_length=1, max_length=1000, description="subscriber ids; unknown ids are created"
    )
    topic: TopicKey | None = None
    broadcast: StrictBool | None = Field(None, description="true: every subscriber of the organisation")
    title: str = Field(..., min_length=1, max_length=500)
    body: str = Field("", max_length=10_000)
    action_url: str = Field("", max_length=2048, description="http(s) URL opened when the item is clicked")
    category: Category = Field("", description="subscribers may opt out of a category")
    data: dict[str, Any] = Field(default_factory=dict, description="custom JSON object, up to 32 KiB")

    @field_validator("title", "body")
    @classmethod
    def _text(cls, value: str) -> str:
        return str(_no_nul(value))

    @field_validator("action_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc or any(c in value for c in " \t\r\n\x00"):
                raise ValueError("action_url must be an http or https URL")
        return value

    @field_validator("data")
    @classmethod
    def _data(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _data_check(value)

    @model_validator(mode="after")
    def _one_audience(self) -> NotificationIn:
        given = [self.to is not None, self.topic is not None, self.broadcast is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one audience: `to`, `topic` or `broadcast`")
        if self.broadcast is False:
            raise ValueError("`broadcast` must be true when given")
        return self

    def draft(self, *, idempotency: IdempotencyClaim | None = None) -> sending.NotificationDraft:
        return sending.NotificationDraft(
            title=self.title,
            to=list(dict.fromkeys(self.to)) if self.to is not None else None,
            topic=self.topic,
            broadcast=bool(self.broadcast),
            body=self.body,
            action_url=self.action_url,
            category=self.category,
            data=self.data,
            idempotency=idempotency,
        )


class NotificationAccepted(Out):
    id: str = Field(..., description="the message id (also the inbox item id)")
    seq: int = Field(..., description="the message's place in the organisation's sequence")
    recipients: int = Field(..., description="inboxes it was written to (opted-out subscribers left out)")


class BatchItemIn(NotificationIn):
    idempotency_key: str | None = Field(None, min_length=1, max_length=255, pattern=r"^[\x20-\x7e]+$")


class BatchIn(Strict):
    notifications: list[BatchItemIn] = Field(..., min_length=1, max_length=100)

    def drafts(self, raw: Any) -> list[sending.NotificationDraft]:
        """The batch's drafts; an item's key is fingerprinted on the item as sent (`raw`), without the key."""
        drafts = []
        for item, raw_item in zip(self.notifications, raw["notifications"], strict=True):
            claim = None
            if item.idempotency_key:
                content = {name: value for name, value in raw_item.items() if name != "idempotency_key"}
                claim = IdempotencyClaim(
                    endpoint=sending.SEND_ENDPOINT, key=item.idempotency_key, request_hash=request_fingerprint(content)
                )
            drafts.append(item.draft(idempotency=claim))
        return drafts


class BatchItemError(Out):
    type: str
    title: str
    status: int
    detail: str


class BatchItemOut(Out):
    index: int
    status: int = Field(..., description="202 when sent (or replayed), else the problem's status")
    id: str | None = None
    seq: int | None = None
    recipients: int | None = None
    replayed: bool = False
    error: BatchItemError | None = None


class BatchOut(Out):
    results: list[BatchItemOut]


class InboxItemOut(Out):
    id: str
    seq: int
    title: str
    body: str
    action_url: str
    category: str
    data: dict[str, Any]
    created_at: str
    read: bool
    seen: bool
    archived: bool
    read_at: str | None
    seen_at: str | None
    archived_at: str | None


class InboxPage(Out):
    items: list[InboxItemOut]
    next_cursor: str | None
    has_more: bool


class Delivery(Out):
    recipients: int = Field(..., description="inboxes written when sent")
    delivered: int = Field(..., description="inbox items that still exist")
    seen: int
    read: int
    archived: int
    unread: int


class MessageOut(Out):
    id: str
    seq: int
    audience: Literal["subscribers", "topic", "broadcast"]
    topic: str | None
    title: str
    body: str
    action_url: str
    category: str
    data: dict[str, Any]
    created_at: datetime
    delivery: Delivery


class TokenIn(Strict):
    expires_in: int = Field(3600, ge=60, le=86_400, description="seconds until the token expires")


class TokenOut(Out):
    token: str
    subscriber_id: str
    expires_at: datetime


class UsageDay(Out):
    date: date
    messages: int
    notifications: int


class UsageOut(Out):
    start: date = Field(..., alias="from")
    end: date = Field(..., alias="to")
    days: list[UsageDay]
    messages: int
    notifications: int

    model_config = ConfigDict(populate_by_name=True, from_attributes=True)


class UnreadCount(Out):
    count: int


class ReadAllOut(Out):
    marked: int
    unread_count: int


class PreferencesIn(Strict):
    categories: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")], StrictBool] = Field(
        ..., max_length=100, description="category -> enabled; false opts the subscriber out of it"
    )


class PreferencesOut(Out):
    categories: dict[str, bool]


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
    return _subscriber_out(subscriber)


@secret.get("/subscribers/{subscriber_id}", response=SubscriberOut, summary="Get a subscriber")
@decorate_view(secret_operation())
def subscriber_get(request: HttpRequest, subscriber_id: SubscriberIdPath) -> dict[str, Any]:
    subscriber = selectors.subscriber_get(external_id=subscriber_id)
    if subscriber is None:
        raise Problem("not-found", "No such subscriber")
    return _subscriber_out(subscriber)


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
    return _page_out(page, _subscriber_out)


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
    return _page_out(page, _subscriber_out)


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
    from notifications.proofs import signing_secrets_live, subscriber_token

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
    import uuid

    pk = _widget_pk(request)
    try:
        message_uuid = uuid.UUID(message_id)
    except ValueError:
        message_uuid = None
    if pk is None or message_uuid is None:
        raise Problem("not-found", "No such notification in this inbox")
    item = services.inbox_item_mark(
        organization_id=_key(request).organization_id, subscriber_pk=pk, message_id=message_uuid, action=action
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
