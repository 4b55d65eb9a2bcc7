"""The pydantic out-models of billing's API (GET /v1/usage)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class UsageDayOut(Out):
    date: date
    messages: int = Field(description="notifications accepted (one per send): what the monthly quota counts")
    notifications: int = Field(description="recipients written (one inbox item each)")
    live_deliveries: int = Field(description="inbox items first written to a socket that day")
    active_subscribers: int = Field(description="distinct subscribers with a socket, month to date")
    peak_connections: int = Field(description="most sockets open at once")
    overage: int = Field(description="messages beyond the plan's monthly quota that day (billed)")


class LimitsOut(Out):
    monthly_notifications: int | None
    monthly_active_subscribers: int | None
    concurrent_connections: int | None
    rate_per_second: float
    burst: int
    retention_days: int
    members: int | None
    overage: bool = Field(description="whether sends go on (billed) past monthly_notifications; Free stops")
    card_required: bool


class PlanOut(Out):
    code: str
    name: str
    limits: LimitsOut


class PeriodOut(Out):
    start: date
    end: date
    resets_at: datetime
    messages: int
    notifications: int
    live_deliveries: int
    active_subscribers: int
    peak_connections: int
    overage: int
    test: bool = Field(description="the organisation's usage is test data: recorded, never billed")


class UsageOut(Out):
    start: date = Field(..., alias="from")
    end: date = Field(..., alias="to")
    days: list[UsageDayOut]
    messages: int
    notifications: int
    plan: PlanOut
    period: PeriodOut

    model_config = ConfigDict(populate_by_name=True, from_attributes=True)
