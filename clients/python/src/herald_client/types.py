"""Herald's answers, typed: the JSON documents as dicts (datetimes stay ISO 8601 strings)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypedDict, TypeVar

T = TypeVar("T")


class Page(TypedDict, Generic[T]):
    items: list[T]
    next_cursor: str | None
    has_more: bool


class NotificationAccepted(TypedDict):
    id: str
    seq: int
    recipients: int


class BatchItemError(TypedDict):
    type: str
    title: str
    status: int
    detail: str


class BatchItemResult(TypedDict):
    index: int
    status: int
    id: str | None
    seq: int | None
    recipients: int | None
    replayed: bool
    error: BatchItemError | None


class BatchResult(TypedDict):
    results: list[BatchItemResult]


class Subscriber(TypedDict):
    id: str
    name: str
    email: str
    locale: str
    data: dict[str, Any]
    created_at: str
    updated_at: str


class Topic(TypedDict):
    key: str
    name: str
    created_at: str


class TopicDetail(Topic):
    subscriber_count: int


class TopicSubscribersAdded(TypedDict):
    added: int


class InboxItem(TypedDict):
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


class ReadAll(TypedDict):
    marked: int
    unread_count: int


class Preferences(TypedDict):
    categories: dict[str, bool]


class Delivery(TypedDict):
    recipients: int
    delivered: int
    seen: int
    read: int
    archived: int
    unread: int


class Message(TypedDict):
    id: str
    seq: int
    audience: Literal["subscribers", "topic", "broadcast"]
    topic: str | None
    title: str
    body: str
    action_url: str
    category: str
    data: dict[str, Any]
    created_at: str
    delivery: Delivery


class Token(TypedDict):
    token: str
    subscriber_id: str
    expires_at: str


class UsageDay(TypedDict):
    date: str
    messages: int  # notifications accepted (one per send): what the monthly quota counts
    notifications: int  # recipients written
    live_deliveries: int
    active_subscribers: int  # month to date
    peak_connections: int
    overage: int


class PlanLimits(TypedDict):
    monthly_notifications: int | None
    monthly_active_subscribers: int | None
    concurrent_connections: int | None
    rate_per_second: float
    burst: int
    retention_days: int
    members: int | None
    overage: bool
    card_required: bool


class UsagePlan(TypedDict):
    code: str
    name: str
    limits: PlanLimits


class UsagePeriod(TypedDict):
    start: str
    end: str
    resets_at: str
    test: bool
    messages: int
    notifications: int
    live_deliveries: int
    active_subscribers: int
    peak_connections: int
    overage: int


Usage = TypedDict(
    "Usage",
    {
        "from": str,
        "to": str,
        "days": list[UsageDay],
        "messages": int,
        "notifications": int,
        "plan": UsagePlan,
        "period": UsagePeriod,
    },
)

InboxAction = Literal["read", "unread", "archive", "unarchive"]
