"""Overage as Stripe meter events: recorded before sending, sent once per organisation and day, reconciled."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.metering import OverageReportError, overage_report
from billing.models import MeterReport
from billing.services import stripe_customer_ensure
from tests.billing.conftest import StripeServers
from tests.conftest import Org


def _reconcile() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("billing_reconcile", "--days", "35", stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_a_days_overage_is_sent_once_with_a_deterministic_identifier(stripe_env: StripeServers, acme: Org) -> None:
    customer = stripe_customer_ensure(organization=acme.organization)
    day = timezone.now().date() - timedelta(days=2)
    calls_before = stripe_env.meter_events()["calls"]
    report = overage_report(organization=acme.organization, period_start=day, quantity=1_234)
    assert report is not None and report.status == MeterReport.Status.SENT
    assert report.identifier == f"herald-{acme.organization.pk}-herald_notifications-{day:%Y%m%d}"
    again = overage_report(organization=acme.organization, period_start=day, quantity=1_234)
    assert again is not None and again.pk == report.pk
    seen = stripe_env.meter_events()
    assert seen["calls"] == calls_before + 1  # the re-run did not call Stripe again
    sent = [event for event in seen["events"] if event["identifier"] == report.identifier]
    assert sent == [
        {
            "object": "billing.meter_event",
            "created": sent[0]["created"],
            "event_name": "herald_notifications",
            "identifier": report.identifier,
            "livemode": False,
            "payload": {"stripe_customer_id": customer.customer_id, "value": "1234"},
            "timestamp": int(report.timestamp.timestamp()),
        }
    ]
    # The same day with another figure would be dropped by Stripe as a duplicate: refused loudly instead.
    with pytest.raises(OverageReportError):
        overage_report(organization=acme.organization, period_start=day, quantity=1_300)


def test_days_outside_stripes_window_or_not_over_yet_are_refused(stripe_env: StripeServers, acme: Org) -> None:
    stripe_customer_ensure(organization=acme.organization)
    today = timezone.now().date()
    for day in (today, today - timedelta(days=36)):
        with pytest.raises(OverageReportError):
            overage_report(organization=acme.organization, period_start=day, quantity=10)
    with pytest.raises(ValueError, match="negative"):
        overage_report(organization=acme.organization, period_start=today - timedelta(days=1), quantity=-1)
    assert overage_report(organization=acme.organization, period_start=today - timedelta(days=1), quantity=0) is None
    assert not MeterReport.objects.filter(organization=acme.organization).exists()


def test_no_customer_means_nothing_is_billed(stripe_env: StripeServers, globex: Org) -> None:
    day = timezone.now().date() - timedelta(days=1)
    assert overage_report(organization=globex.organization, period_start=day, quantity=50) is None
    assert not MeterReport.objects.filter(organization=globex.organization).exists()


def test_reconcile_agrees_with_stripe_and_names_a_day_that_does_not(stripe_env: StripeServers, acme: Org) -> None:
    customer = stripe_customer_ensure(organization=acme.organization)
    today = timezone.now().date()
    for days_ago, quantity in ((3, 100), (4, 250)):
        overage_report(organization=acme.organization, period_start=today - timedelta(days=days_ago), quantity=quantity)
    code, out = _reconcile()
    assert code == 0, out
    assert f"ok organisation {acme.organization.pk} customer {customer.customer_id} {today - timedelta(days=3)}" in out
    assert "herald 250, stripe 250" in out
    # A day Herald believes it sent but Stripe never received (say, a row restored from a backup).
    ghost_day = today - timedelta(days=5)
    MeterReport.objects.create(
        organization=acme.organization,
        customer_id=customer.customer_id,
        event_name="herald_notifications",
        period_start=ghost_day,
        quantity=7,
        identifier=f"ghost-{acme.organization.pk}",
        timestamp=timezone.now() - timedelta(days=5),
        status=MeterReport.Status.SENT,
    )
    code, out = _reconcile()
    assert code == 1
    assert (
        f"MISMATCH organisation {acme.organization.pk} customer {customer.customer_id} {ghost_day}: herald 7, stripe 0"
        in out
    )
