"""The portal's usage page and its CSV: the plan's limits, this month against them, and 30 days of every
ledger figure as server-drawn SVG charts. Every member may see it. The figures come from
billing.usage.usage_days, the same function GET /v1/usage and the ledger's rollup read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from billing.selectors import usage_csv
from billing.usage import DayUsage, usage_days, usage_period
from portal.access import organization_view, portal_context
from portal.permissions import Action

USAGE_DAYS = 30
CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 600, 120, 10

# (ledger field, title, what one unit is)
CHARTS = (
    ("messages", "Notifications accepted", "one per send, what the monthly quota counts"),
    ("notifications", "Recipients written", "one inbox item per recipient"),
    ("live_deliveries", "Live deliveries", "inbox items written to a socket"),
    ("active_subscribers", "Monthly active subscribers", "distinct subscribers with a socket, month to date"),
    ("peak_connections", "Peak concurrent connections", "most sockets open at once"),
    ("overage", "Overage", "notifications over the plan's monthly quota (billed)"),
)


@dataclass(frozen=True)
class Bar:
    day: date
    value: int
    x: float
    height: float
    y: float


@dataclass(frozen=True)
class Chart:
    field: str
    title: str
    help: str
    top: int
    total: int
    bars: list[Bar]


@dataclass(frozen=True)
class Meter:
    name: str
    used: int
    limit: int | None

    @property
    def percent(self) -> int:
        if not self.limit:
            return 0
        return min(100, round(100 * self.used / self.limit))


def usage_chart(field: str, title: str, help_text: str, days: list[DayUsage]) -> Chart:
    """A bar per day of one ledger figure, scaled to the busiest day."""
    values = [int(getattr(d, field)) for d in days]
    top = max([*values, 1])
    step = CHART_WIDTH / max(len(days), 1)
    bars = []
    for i, (d, value) in enumerate(zip(days, values, strict=True)):
        height = (CHART_HEIGHT - CHART_TOP) * value / top
        bars.append(
            Bar(
                day=d.date,
                value=value,
                x=round(i * step + step * 0.15, 2),
                height=round(height, 2),
                y=round(CHART_HEIGHT - height, 2),
            )
        )
    return Chart(field=field, title=title, help=help_text, top=top, total=sum(values), bars=bars)


def _window() -> tuple[date, date]:
    end = timezone.now().date()
    return end - timedelta(days=USAGE_DAYS - 1), end


@organization_view(Action.VIEW)
@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/usage: the plan, this month against its limits, and 30 days of every ledger figure."""
    ctx = portal_context(request)
    start, end = _window()
    days = usage_days(ctx.organization, start, end)
    period = usage_period(ctx.organization)
    totals = period.totals()
    plan = period.plan
    step = CHART_WIDTH / max(len(days), 1)
    return render(
        request,
        "portal/usage.html",
        {
            "section": "usage",
            "days": list(reversed(days)),
            "charts": [usage_chart(field, title, text, days) for field, title, text in CHARTS],
            "bar_width": round(step * 0.7, 2),
            "chart_width": CHART_WIDTH,
            "chart_height": CHART_HEIGHT,
            "start": start,
            "end": end,
            "plan": plan,
            "period": period,
            "meters": [
                Meter("Notifications this month", totals["messages"], plan.monthly_notifications),
                Meter("Monthly active subscribers", totals["active_subscribers"], plan.monthly_active_subscribers),
                Meter("Peak concurrent connections", totals["peak_connections"], plan.concurrent_connections),
            ],
            "overage": totals["overage"],
            "total_messages": sum(d.messages for d in days),
            "total_notifications": sum(d.notifications for d in days),
        },
    )


@organization_view(Action.VIEW)
@require_GET
def usage_download(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/usage.csv: the same 30 days as the page, one row a day, oldest first."""
    ctx = portal_context(request)
    start, end = _window()
    response = HttpResponse(usage_csv(usage_days(ctx.organization, start, end)), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="usage-{ctx.organization.slug}-{start}-{end}.csv"'
    return response
