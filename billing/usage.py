"""The usage ledger: every figure per organisation per UTC day, computed from durable rows only.

- messages: the organisation's message rows created that day (the notifications accepted; the quota's unit);
- notifications: the recipients written, the sum of those messages' recipient counts (one inbox item each;
  kept on the message, so erasing a subscriber later changes no bill);
- live_deliveries: inbox items whose delivery receipt (`delivered_at`) falls on that day;
- active_subscribers: distinct subscribers with an authenticated socket from the 1st of the month to that
  day (billing.models.SubscriberActivity), so the month's last day holds its monthly active subscribers;
- peak_connections: the most sockets open at once, the largest per-minute sum of every process's peak
  (billing.models.ConnectionSample);
- overage: the messages of that day beyond the plan's monthly quota (0 for Free, which stops there, and
  for test data).

`usage_days` computes them for a range (GET /v1/usage, the portal and its CSV all read it), `usage_rollup`
stores one day in the ledger (`UsageDay`) and gets the same figures however often it runs: nothing here
reads Redis.

Retention deletes messages (and their inbox items) older than the plan's retention days, so a day's rows
are the truth only while they are all there: a day before `frozen_before` (its rows may be partly gone)
keeps the figures its ledger row recorded, the rollup leaves that row as it is, and every reader (these
functions and the quota's seed, billing.quotas) takes the ledger row for it. Rolling each day up within
the retention (the daily job does yesterday) keeps every figure.

Test data never bills: an organisation named in HERALD_BILLING_TEST_ORGANIZATIONS (by default `demo`, the
organisation `herald dev` makes) is recorded with `test=True` and no overage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing.models import ConnectionSample, SubscriberActivity, UsageDay
from billing.plans import Plan, plan_for
from notifications.models import InboxItem, Message
from tenants.models import Organization

FIGURES = ("messages", "notifications", "live_deliveries", "active_subscribers", "peak_connections", "overage")


@dataclass(frozen=True)
class DayUsage:
    """One day's figures (see the module's docstring)."""

    date: date
    messages: int
    notifications: int
    live_deliveries: int
    active_subscribers: int
    peak_connections: int
    overage: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def organization_is_test(organization: Organization) -> bool:
    """Whether the organisation's usage is test data, recorded but never billed."""
    return organization.slug in getattr(settings, "HERALD_BILLING_TEST_ORGANIZATIONS", ["demo"])


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month_start(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_resets_at(day: date) -> datetime:
    """When the monthly period holding `day` ends and its quota starts again (UTC midnight of the 1st)."""
    return datetime.combine(next_month_start(day), time(), tzinfo=UTC)


def _at(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _messages_per_day(schema: str, start: date, end: date) -> dict[date, tuple[int, int]]:
    table = f'"{schema}".{Message._meta.db_table}'
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT (created_at AT TIME ZONE 'UTC')::date, count(*), coalesce(sum(recipient_count), 0)
                FROM {table} WHERE created_at >= %s AND created_at < %s GROUP BY 1""",
            [_at(start), _at(end + timedelta(days=1))],
        )
        return {row[0]: (int(row[1]), int(row[2])) for row in cursor.fetchall()}


def _deliveries_per_day(schema: str, start: date, end: date) -> dict[date, int]:
    table = f'"{schema}".{InboxItem._meta.db_table}'
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT (delivered_at AT TIME ZONE 'UTC')::date, count(*)
                FROM {table} WHERE delivered_at >= %s AND delivered_at < %s GROUP BY 1""",
            [_at(start), _at(end + timedelta(days=1))],
        )
        return {row[0]: int(row[1]) for row in cursor.fetchall()}


def _active_per_day(organization_id: int, start: date, end: date) -> dict[date, int]:
    table = SubscriberActivity._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT d::date, (SELECT count(DISTINCT a.subscriber_pk) FROM public.{table} a
                                 WHERE a.organization_id = %s
                                   AND a.day >= date_trunc('month', d)::date AND a.day <= d::date)
                FROM generate_series(%s::date, %s::date, interval '1 day') AS d""",
            [organization_id, start, end],
        )
        return {row[0]: int(row[1]) for row in cursor.fetchall()}


def _peaks_per_day(organization_id: int, start: date, end: date) -> dict[date, int]:
    table = ConnectionSample._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT (minute AT TIME ZONE 'UTC')::date, max(total) FROM (
                    SELECT minute, sum(peak) AS total FROM public.{table}
                    WHERE organization_id = %s AND minute >= %s AND minute < %s GROUP BY minute
                ) m GROUP BY 1""",
            [organization_id, _at(start), _at(end + timedelta(days=1))],
        )
        return {row[0]: int(row[1]) for row in cursor.fetchall()}


def _overage(plan: Plan, before: int, today: int, *, test: bool) -> int:
    """Messages of a day beyond the monthly quota, `before` of the month sent on earlier days."""
    limit = plan.monthly_notifications
    if test or limit is None or not plan.overage:
        return 0
    return max(0, before + today - limit) - max(0, before - limit)


def frozen_before(plan: Plan, today: date) -> date:
    """The first day whose message rows retention has not touched yet; earlier days keep their ledger row."""
    return today - timedelta(days=plan.retention_days - 1)


def _frozen_rows(organization_id: int, first: date, before: date) -> dict[date, UsageDay]:
    if first >= before:
        return {}
    rows = UsageDay.objects.filter(organization_id=organization_id, day__gte=first, day__lt=before)
    return {row.day: row for row in rows}


def usage_days(organization: Organization, start: date, end: date) -> list[DayUsage]:
    """Every figure per day from `start` to `end` (inclusive, UTC), computed from durable rows."""
    plan = plan_for(organization.plan)
    test = organization_is_test(organization)
    first = month_start(start)  # the overage of a day needs the month's earlier days
    with tenant_context(organization):
        messages = _messages_per_day(organization.schema_name, first, end)
        deliveries = _deliveries_per_day(organization.schema_name, start, end)
    for day, row in _frozen_rows(organization.pk, first, frozen_before(plan, timezone.now().date())).items():
        messages[day] = (row.messages, row.notifications)
        deliveries[day] = row.live_deliveries
    active = _active_per_day(organization.pk, start, end)
    peaks = _peaks_per_day(organization.pk, start, end)
    days = []
    month_total = 0
    day = first
    while day <= end:
        if day.day == 1:
            month_total = 0
        sent, written = messages.get(day, (0, 0))
        if day >= start:
            days.append(
                DayUsage(
                    date=day,
                    messages=sent,
                    notifications=written,
                    live_deliveries=deliveries.get(day, 0),
                    active_subscribers=active.get(day, 0),
                    peak_connections=peaks.get(day, 0),
                    overage=_overage(plan, month_total, sent, test=test),
                )
            )
        month_total += sent
        day += timedelta(days=1)
    return days


@transaction.atomic
def usage_rollup(organization: Organization, day: date) -> UsageDay:
    """Recompute the organisation's ledger row of `day` from durable rows (idempotent: same rows, same row).

    A day before `frozen_before` that has a row already keeps it: retention may have deleted its messages."""
    if day < frozen_before(plan_for(organization.plan), timezone.now().date()):
        kept = UsageDay.objects.filter(organization=organization, day=day).first()
        if kept is not None:
            return kept
    (figures,) = usage_days(organization, day, day)
    values = figures.as_dict()
    values.pop("date")
    row, _ = UsageDay.objects.update_or_create(
        organization=organization,
        day=day,
        defaults={
            **values,
            "plan": organization.plan,
            "test": organization_is_test(organization),
            "computed_at": timezone.now(),
        },
    )
    return row


def overage_quantity(organization: Organization, day: date) -> int:
    """The organisation's overage of `day` as billed: its ledger row, rolled up now (Stripe's meter source)."""
    return usage_rollup(organization, day).overage


def usage_rollup_all(day: date, *, slug: str | None = None) -> list[UsageDay]:
    """Roll `day` up for every organisation (or the one with `slug`); what a periodic job calls."""
    organizations = Organization.objects.exclude(schema_name="public").order_by("pk")
    if slug is not None:
        organizations = organizations.filter(slug=slug)
    return [usage_rollup(organization, day) for organization in organizations]


@dataclass(frozen=True)
class PeriodUsage:
    """The current monthly period: the plan, its limits, the counts so far and the daily breakdown."""

    plan: Plan
    start: date
    end: date
    resets_at: datetime
    days: list[DayUsage]
    test: bool

    def totals(self) -> dict[str, int]:
        totals = {name: sum(getattr(d, name) for d in self.days) for name in FIGURES}
        # Month-to-date and peak figures are not sums.
        totals["active_subscribers"] = max((d.active_subscribers for d in self.days), default=0)
        totals["peak_connections"] = max((d.peak_connections for d in self.days), default=0)
        return totals


def usage_period(organization: Organization, today: date | None = None) -> PeriodUsage:
    """The organisation's current period (the calendar month, UTC) up to `today`."""
    today = today or timezone.now().date()
    start = month_start(today)
    return PeriodUsage(
        plan=plan_for(organization.plan),
        start=start,
        end=today,
        resets_at=period_resets_at(today),
        days=usage_days(organization, start, today),
        test=organization_is_test(organization),
    )
