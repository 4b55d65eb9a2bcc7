"""Overage to Stripe Billing Meters: one meter event per organisation and day, recorded before it is sent.

`overage_report` is the one way in: the caller (the overage job) says how much one day was over the plan.
The MeterReport row is Herald's durable record of what it sent; its `identifier` is deterministic, so Stripe
drops a second send of the same day (a re-run, a retry after a crash between send and record) and nothing is
billed twice. `meter_reconcile` compares the record with Stripe's meter event summaries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing.models import MeterReport, StripeCustomer
from billing.stripe_api import stripe_client
from tenants.models import Organization

logger = logging.getLogger(__name__)

# Stripe accepts meter events with timestamps from 35 days ago to 5 minutes ahead.
METER_WINDOW = timedelta(days=35)


class OverageReportError(Exception):
    """A day that cannot be reported as asked (still open, outside Stripe's window, changed after sending)."""


def meter_identifier(*, organization: Organization, event_name: str, period_start: date) -> str:
    """The meter event's identifier: the same organisation, meter and day always give the same one."""
    return f"herald-{organization.pk}-{event_name}-{period_start:%Y%m%d}"


def _day_timestamp(period_start: date) -> datetime:
    # The day's last second: inside the day the quantity belongs to, and never in the future for a closed day.
    return datetime.combine(period_start, time(23, 59, 59), tzinfo=UTC)


def overage_report(*, organization: Organization, period_start: date, quantity: int) -> MeterReport | None:
    """Send one closed day's overage of the organisation to Stripe's meter, once; the record written first.

    None when there is nothing to bill (no overage, or no Stripe customer). A day already sent with the same
    quantity is left alone; a different quantity for a sent day raises (Stripe would drop it as a duplicate).
    """
    if quantity < 0:
        raise ValueError("an overage quantity cannot be negative")
    if quantity == 0:
        return None
    now = timezone.now()
    timestamp = _day_timestamp(period_start)
    if period_start >= now.date():
        raise OverageReportError(f"{period_start} is not over yet: report a day once it has closed")
    if timestamp < now - METER_WINDOW:
        raise OverageReportError(f"{period_start} is older than Stripe's 35-day window for meter events")
    customer = StripeCustomer.objects.filter(organization=organization).first()
    if customer is None:
        logger.warning(
            "overage of %s on %s not reported: the organisation has no Stripe customer", organization, period_start
        )
        return None
    event_name = settings.STRIPE_METER_EVENT_NAME
    identifier = meter_identifier(organization=organization, event_name=event_name, period_start=period_start)
    with transaction.atomic():
        report, created = MeterReport.objects.select_for_update().get_or_create(
            organization=organization,
            event_name=event_name,
            period_start=period_start,
            defaults={
                "customer_id": customer.customer_id,
                "quantity": quantity,
                "identifier": identifier,
                "timestamp": timestamp,
            },
        )
        if report.status == MeterReport.Status.SENT:
            if report.quantity != quantity:
                raise OverageReportError(
                    f"{period_start} was already reported as {report.quantity}, now {quantity}: reconcile it by hand"
                )
            return report
        if not created and report.quantity != quantity:
            report.quantity = quantity
            report.save(update_fields=["quantity"])
    return _meter_event_send(report)


def _meter_event_send(report: MeterReport) -> MeterReport:
    # Stripe takes one concurrent meter call per customer and meter: a transaction-scoped advisory lock makes
    # every Herald process wait its turn for the same customer.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"stripe-meter:{report.customer_id}"])
        locked = MeterReport.objects.select_for_update().get(pk=report.pk)
        if locked.status == MeterReport.Status.SENT:
            return locked
        stripe_client().v1.billing.meter_events.create(
            {
                "event_name": locked.event_name,
                "identifier": locked.identifier,
                "timestamp": int(locked.timestamp.timestamp()),
                "payload": {"stripe_customer_id": locked.customer_id, "value": str(locked.quantity)},
            }
        )
        locked.status = MeterReport.Status.SENT
        locked.sent_at = timezone.now()
        locked.save(update_fields=["status", "sent_at"])
    return locked


# Where the overage quantity comes from: (organization, day) -> notifications over the plan that day. The usage
# ledger registers it (the lead wires billing.usage here at merge); until then the overage job has nothing to
# report and the schedule does not enqueue it.
OverageQuantitySource = Callable[[Organization, date], int]
_overage_quantity_source: OverageQuantitySource | None = None


def overage_quantity_source_register(source: OverageQuantitySource | None) -> None:
    """Register the function that says how much one organisation's day was over its plan (None: unregister)."""
    global _overage_quantity_source  # noqa: PLW0603 - one registered hook, as tenants.plans does
    _overage_quantity_source = source


def overage_quantity_source() -> OverageQuantitySource | None:
    """The registered overage quantity source, or None while none is."""
    return _overage_quantity_source


@dataclass(frozen=True)
class ReconcileRow:
    """One organisation's day: what Herald recorded as sent and what Stripe's meter summarises."""

    organization_id: int
    customer_id: str
    day: date
    recorded: int
    stripe: int

    @property
    def agrees(self) -> bool:
        return self.recorded == self.stripe


def meter_reconcile(*, days: int = 35, today: date | None = None) -> list[ReconcileRow]:
    """Herald's sent meter reports of the last `days` days against Stripe's daily meter event summaries."""
    if not settings.STRIPE_METER_ID:
        raise OverageReportError("STRIPE_METER_ID is not set: there is no meter to reconcile against")
    end = today or timezone.now().date()
    start = end - timedelta(days=days)
    recorded: dict[tuple[int, str], dict[date, int]] = {}
    for report in MeterReport.objects.filter(
        status=MeterReport.Status.SENT,
        event_name=settings.STRIPE_METER_EVENT_NAME,
        period_start__gte=start,
        period_start__lt=end,
    ):
        recorded.setdefault((report.organization_id, report.customer_id), {})[report.period_start] = report.quantity
    rows: list[ReconcileRow] = []
    client = stripe_client()
    for (organization_id, customer_id), by_day in sorted(recorded.items()):
        summaries = client.v1.billing.meters.event_summaries.list(
            settings.STRIPE_METER_ID,
            {
                "customer": customer_id,
                "start_time": int(datetime.combine(start, time(0), tzinfo=UTC).timestamp()),
                "end_time": int(datetime.combine(end, time(0), tzinfo=UTC).timestamp()),
                "value_grouping_window": "day",
                "limit": 100,
            },
        )
        from_stripe: dict[date, int] = {}
        for summary in summaries.auto_paging_iter():
            day = datetime.fromtimestamp(int(summary["start_time"]), tz=UTC).date()
            from_stripe[day] = from_stripe.get(day, 0) + round(float(summary["aggregated_value"]))
        for day in sorted(set(by_day) | set(from_stripe)):
            rows.append(
                ReconcileRow(
                    organization_id=organization_id,
                    customer_id=customer_id,
                    day=day,
                    recorded=by_day.get(day, 0),
                    stripe=from_stripe.get(day, 0),
                )
            )
    return rows
