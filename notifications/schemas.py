"""Shapes shared by the HTTP API and the real-time protocol: the pydantic in/out models and the payloads."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from herald.wording import pattern_describe
from notifications.models import InboxItem, Message, Subscriber

if TYPE_CHECKING:
    from notifications.idempotency import IdempotencyClaim
    from notifications.sending import NotificationDraft


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


@dataclass(frozen=True, slots=True)
class MessageFields:
    """The message fields inbox_item_payload reads, without a model instance (the send engine's batches, the
    event-loop inbox routes)."""

    id: uuid.UUID
    seq: int
    title: str
    body: str
    action_url: str
    category: str
    data: Any
    created_at: datetime


def inbox_item_payload(
    message: Message | MessageFields,
    *,
    read_at: datetime | None = None,
    seen_at: datetime | None = None,
    archived_at: datetime | None = None,
) -> dict[str, Any]:
    """An inbox item as clients see it; its id is its message's id."""
    return {
        "id": str(message.id),
        "seq": message.seq,
        "title": message.title,
        "body": message.body,
        "action_url": message.action_url,
        "category": message.category,
        "data": message.data,
        "created_at": _iso(message.created_at),
        "read": read_at is not None,
        "seen": seen_at is not None,
        "archived": archived_at is not None,
        "read_at": _iso(read_at),
        "seen_at": _iso(seen_at),
        "archived_at": _iso(archived_at),
    }


def inbox_item_dict(item: InboxItem) -> dict[str, Any]:
    """The payload of a stored inbox item (its message must be loaded)."""
    return inbox_item_payload(item.message, read_at=item.read_at, seen_at=item.seen_at, archived_at=item.archived_at)


def subscriber_payload(subscriber: Subscriber) -> dict[str, Any]:
    """A subscriber as the server API answers it."""
    return {
        "id": subscriber.external_id,
        "name": subscriber.name,
        "email": subscriber.email,
        "locale": subscriber.locale,
        "data": subscriber.data,
        "created_at": subscriber.created_at,
        "updated_at": subscriber.updated_at,
    }


# The subscriber-id rule, in one place: 1-255 characters, not only spaces, no control characters, no `/` (ids
# are path segments). The API's pydantic fields and path parameters take the pattern (with its rule in words for
# validation errors: herald.wording); the socket's `auth` frame, subscriber_id_valid.
SUBSCRIBER_ID_MAX_LENGTH = 255
SUBSCRIBER_ID_PATTERN = pattern_describe(
    r"^[^\x00-\x1f\x7f/]*[^\x00-\x20\x7f/][^\x00-\x1f\x7f/]*$",
    "a subscriber id is 1-255 characters, not only spaces; `/` and control characters are not allowed",
)
KEY_PATTERN = pattern_describe(
    r"^[A-Za-z0-9_.:-]{1,100}$", "may contain only letters, digits and `_` `.` `:` `-` (1-100 characters)"
)
CATEGORY_PATTERN = pattern_describe(
    r"^[A-Za-z0-9_.:-]{0,100}$", "may contain only letters, digits and `_` `.` `:` `-` (up to 100 characters)"
)
# An action URL: empty, or http(s)://<authority> then a path, query or fragment; no spaces or control characters.
# The authority takes RFC 3986's characters (an IDN host in its xn-- form): urlsplit refuses some others (an
# unclosed `[`, characters NFKC folds into `/?#@`), so this is the whole rule and the document states all of it.
ACTION_URL_PATTERN = pattern_describe(
    r"^(?:[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~%!$&'()*+,;=:@-]+(?:[/?#][^\x00-\x20\x7f]*)?)?$",
    "action_url must be an http or https URL",
)
MAX_DATA_BYTES = 32 * 1024

SubscriberId = Annotated[str, Field(pattern=SUBSCRIBER_ID_PATTERN, min_length=1, max_length=SUBSCRIBER_ID_MAX_LENGTH)]
TopicKey = Annotated[str, Field(pattern=KEY_PATTERN, min_length=1, max_length=100)]
Category = Annotated[str, Field(pattern=CATEGORY_PATTERN, max_length=100)]


_SUBSCRIBER_ID = re.compile(SUBSCRIBER_ID_PATTERN)


_TOPIC_KEY = re.compile(KEY_PATTERN)


def topic_key_valid(key: object) -> bool:
    """Whether `key` is a topic key as the API takes them (KEY_PATTERN)."""
    return isinstance(key, str) and 0 < len(key) <= 100 and _TOPIC_KEY.fullmatch(key) is not None


def subscriber_id_valid(subscriber_id: object) -> bool:
    """Whether `subscriber_id` is a subscriber id as the API takes them (SUBSCRIBER_ID_PATTERN, at most
    SUBSCRIBER_ID_MAX_LENGTH characters, and no lone surrogates, which PostgreSQL cannot store)."""
    return (
        isinstance(subscriber_id, str)
        and 0 < len(subscriber_id) <= SUBSCRIBER_ID_MAX_LENGTH
        and _SUBSCRIBER_ID.fullmatch(subscriber_id) is not None
        and not any("\ud800" <= ch <= "\udfff" for ch in subscriber_id)
    )


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


# What the document says of an email field: an address (as Django's validator takes it), "" to clear, or null.
_EMAIL_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "format": "email", "maxLength": 254}, {"const": ""}, {"type": "null"}]
}


def _given(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


# "Exactly one audience" in the document's words: exactly one of to / topic / broadcast given and not null
# (null counts as not given), and broadcast, when given, true.
_ONE_AUDIENCE: dict[str, Any] = {"oneOf": [_given("to"), _given("topic"), _given("broadcast")]}


class SubscriberIn(Strict):
    name: str | None = Field(None, max_length=255)
    email: str | None = Field(
        None, max_length=254, description="empty string to clear", json_schema_extra=_EMAIL_SCHEMA
    )
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


class SubscriberImportItem(SubscriberIn):
    id: SubscriberId

    def fields(self) -> dict[str, Any]:
        """The fields given (left out or null: kept as they are)."""
        given = self.model_dump(exclude_unset=True, exclude={"id"})
        return {name: value for name, value in given.items() if value is not None}


class SubscribersImportIn(Strict):
    subscribers: list[SubscriberImportItem] = Field(..., min_length=1, max_length=1000)


class SubscriberImportResult(Out):
    index: int
    status: int = Field(..., description="201 when created, 200 when updated")
    id: str
    created: bool


class SubscribersImportOut(Out):
    results: list[SubscriberImportResult]


class SubscriberOut(Out):
    id: str
    name: str
    email: str
    locale: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


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

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_AUDIENCE)

    to: list[SubscriberId] | None = Field(
        None, min_length=1, max_length=1000, description="subscriber ids; unknown ids are created"
    )
    topic: TopicKey | None = None
    broadcast: StrictBool | None = Field(
        None,
        description="true: every subscriber of the organisation",
        json_schema_extra={"anyOf": [{"const": True}, {"type": "null"}]},
    )
    title: str = Field(..., min_length=1, max_length=500)
    body: str = Field("", max_length=10_000)
    action_url: str = Field(
        "", max_length=2048, pattern=ACTION_URL_PATTERN, description="http(s) URL opened when the item is clicked"
    )
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
        given = [
            name
            for name, value in (("to", self.to), ("topic", self.topic), ("broadcast", self.broadcast))
            if value is not None
        ]
        if not given:
            raise ValueError("give an audience: one of `to` (subscriber ids), `topic` or `broadcast: true`")
        if len(given) > 1:
            raise ValueError(
                f"give exactly one audience: this request gave {' and '.join(f'`{n}`' for n in given)}; "
                "keep one of `to`, `topic` or `broadcast`"
            )
        if self.broadcast is False:
            raise ValueError("`broadcast` must be true when given")
        return self

    def draft(self, *, idempotency: IdempotencyClaim | None = None) -> NotificationDraft:
        # Imported here: the send engine imports this module for the inbox item payload.
        from notifications.sending import NotificationDraft

        return NotificationDraft(
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

    def drafts(self, raw: Any) -> list[NotificationDraft]:
        """The batch's drafts; an item's key is fingerprinted on the item as sent (`raw`), without the key."""
        from notifications import sending
        from notifications.idempotency import IdempotencyClaim, request_fingerprint

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


class UnreadCount(Out):
    count: int


class ReadAllOut(Out):
    marked: int
    unread_count: int


class PreferencesIn(Strict):
    categories: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")], StrictBool] = Field(
        ...,
        max_length=100,
        description="category -> enabled; false opts the subscriber out of it",
        json_schema_extra={"additionalProperties": False},  # a key outside the pattern is refused
    )


class PreferencesOut(Out):
    categories: dict[str, bool]


# --- schemas of the server-side inbox actions and topic reads --------------------------------


class TopicDetailOut(Out):
    key: str
    name: str
    created_at: datetime
    subscriber_count: int = Field(..., description="subscribers in the topic now")


class TopicPage(Out):
    items: list[TopicDetailOut]
    next_cursor: str | None
    has_more: bool
