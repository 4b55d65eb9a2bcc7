"""Herald's background jobs, on Procrastinate (PostgreSQL). `herald worker` runs them; so does `herald dev`.

Every job names its organisation (`organization_id`) and activates it itself: nothing is inherited from a
connection. Jobs are thin shells over the apps' services; this module is the one place that knows them all
(like the rest of the herald package, the wiring). `upkeep_schedule` is the periodic job that enqueues the
others, each under a queueing lock so a slow round never piles up duplicates.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone
from django_tenants.utils import tenant_context
from procrastinate import exceptions as procrastinate_exceptions
from procrastinate.contrib.django import app

from tenants.models import DeletedSchema, Organization

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

QUEUE = "upkeep"
BILLING_QUEUE = "billing"


def _database_job(function: Callable[P, R]) -> Callable[P, R]:
    """Run a sync job on a healthy Django connection of its worker thread, returned afterwards."""

    @functools.wraps(function)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            # Worker threads come and go: a connection left open in one would outlive it.
            connections.close_all()

    return wrapped


def _organization(organization_id: int) -> Organization | None:
    organization = Organization.objects.filter(pk=organization_id).exclude(schema_name="public").first()
    if organization is None:
        logger.info("organisation %s is gone: nothing to do", organization_id)
    return organization


@app.task(name="herald.retention_apply", queue=QUEUE)
@_database_job
def retention_apply(*, organization_id: int) -> int:
    """Delete the organisation's messages older than its plan's retention; how many."""
    from django.db.models import Min

    from billing import usage
    from billing.plans import plan_for
    from notifications.models import Message
    from notifications.services import messages_delete_before

    organization = _organization(organization_id)
    if organization is None:
        return 0
    before = timezone.now() - timedelta(days=plan_for(organization.plan).retention_days)
    # The ledger keeps what is billed: every day about to lose rows is rolled up first (a day rolled up
    # already keeps its row; one never rolled up, say while no worker ran, is computed from its rows now).
    with tenant_context(organization):
        oldest = Message.objects.filter(created_at__lt=before).aggregate(oldest=Min("created_at"))["oldest"]
    if oldest is not None:
        day = oldest.date()
        while day <= before.date():
            usage.usage_rollup(organization, day)
            day += timedelta(days=1)
    with tenant_context(organization):
        deleted = messages_delete_before(before=before)
    logger.info("retention: %s messages of %s deleted (before %s)", deleted, organization.slug, before)
    return deleted


@app.task(name="herald.idempotency_purge", queue=QUEUE)
@_database_job
def idempotency_purge(*, organization_id: int, hours: float = 48.0) -> int:
    """Delete the organisation's idempotency records older than `hours` (at least 24); how many."""
    from notifications.idempotency import idempotency_purge as purge

    organization = _organization(organization_id)
    if organization is None:
        return 0
    with tenant_context(organization):
        return purge(older_than=timedelta(hours=hours))


@app.task(name="herald.deleted_schema_drop", queue=QUEUE)
@_database_job
def deleted_schema_drop(*, organization_id: int) -> bool:
    """Drop the schema of the deleted organisation once HERALD_SCHEMA_DELETE_AFTER_DAYS have passed."""
    from tenants.services import deleted_schema_drop as drop

    dropped = drop(organization_id=organization_id)
    logger.info("schema of deleted organisation %s %s", organization_id, "dropped" if dropped else "not due")
    return dropped


@app.task(name="herald.overage_report", queue=BILLING_QUEUE)
@_database_job
def overage_report(*, organization_id: int, day: str) -> int:
    """Report one closed day's overage of the organisation to Stripe's meter (billing.metering); the quantity."""
    from billing.metering import overage_quantity_source
    from billing.metering import overage_report as report

    source = overage_quantity_source()
    organization = _organization(organization_id)
    if source is None or organization is None:
        return 0
    period_start = date.fromisoformat(day)
    quantity = int(source(organization, period_start))
    report(organization=organization, period_start=period_start, quantity=quantity)
    return quantity


@app.task(name="herald.past_due_check", queue=BILLING_QUEUE)
@_database_job
def past_due_check(*, organization_id: int) -> str | None:
    """Re-read the organisation's subscription from Stripe: past due beyond the grace falls back to Free."""
    from billing.services import stripe_customer_sync

    organization = _organization(organization_id)
    if organization is None:
        return None
    return stripe_customer_sync(organization=organization)


@app.task(name="herald.usage_rollup", queue=BILLING_QUEUE)
@_database_job
def usage_rollup(*, organization_id: int, day: str) -> None:
    """Recompute the organisation's usage ledger for one day.

    `upkeep_enqueue` enqueues it per organisation for yesterday and today every round.
    """
    organization = _organization(organization_id)
    if organization is None:
        return
    from billing import usage

    usage.usage_rollup(organization, date.fromisoformat(day))


# The rollup job runs every round (a switch for tests that count the jobs a round enqueues).
ROLLUP_ENABLED = True


def _defer(task: Any, *, lock: str, **kwargs: Any) -> bool:
    """Enqueue `task` unless a job with the same queueing lock is still waiting; whether it was enqueued."""
    try:
        task.configure(queueing_lock=lock).defer(**kwargs)
    except procrastinate_exceptions.AlreadyEnqueued:
        return False
    return True


def upkeep_enqueue(*, today: date | None = None) -> dict[str, int]:
    """Enqueue one round of upkeep for every organisation, and the drops of deleted schemas now due; counts."""
    from billing.metering import overage_quantity_source
    from billing.models import StripeCustomer
    from billing.stripe_api import billing_configured

    today = today or timezone.now().date()
    yesterday = (today - timedelta(days=1)).isoformat()
    from billing.services import PAST_DUE_GRACE

    counts = {"retention": 0, "idempotency": 0, "overage": 0, "rollup": 0, "schema_drop": 0, "past_due": 0}
    billed = set(StripeCustomer.objects.values_list("organization_id", flat=True))
    # Overage goes to Stripe's meter only where billing is configured (a self-hosted Herald has no Stripe).
    report_overage = billing_configured() and overage_quantity_source() is not None
    for organization_id in (
        Organization.objects.exclude(schema_name="public").order_by("id").values_list("id", flat=True)
    ):
        counts["retention"] += _defer(
            retention_apply, lock=f"retention:{organization_id}", organization_id=organization_id
        )
        counts["idempotency"] += _defer(
            idempotency_purge, lock=f"idempotency:{organization_id}", organization_id=organization_id
        )
        if ROLLUP_ENABLED:
            for day in (yesterday, today.isoformat()):
                counts["rollup"] += _defer(
                    usage_rollup, lock=f"rollup:{organization_id}:{day}", organization_id=organization_id, day=day
                )
        if report_overage and organization_id in billed:
            counts["overage"] += _defer(
                overage_report,
                lock=f"overage:{organization_id}:{yesterday}",
                organization_id=organization_id,
                day=yesterday,
            )
    # Past due beyond the grace and still on a paid plan: no event may come to say so, so look.
    for organization_id in (
        StripeCustomer.objects.filter(past_due_since__lte=timezone.now() - PAST_DUE_GRACE)
        .exclude(organization__plan="free")
        .values_list("organization_id", flat=True)
    ):
        counts["past_due"] += _defer(
            past_due_check, lock=f"past-due:{organization_id}", organization_id=organization_id
        )
    due = timezone.now() - timedelta(days=int(settings.HERALD_SCHEMA_DELETE_AFTER_DAYS))
    for organization_id in DeletedSchema.objects.filter(dropped_at__isnull=True, deleted_at__lte=due).values_list(
        "organization_id", flat=True
    ):
        counts["schema_drop"] += _defer(
            deleted_schema_drop, lock=f"schema-drop:{organization_id}", organization_id=organization_id
        )
    return counts


@app.periodic(cron="*/15 * * * *", periodic_id="upkeep")
@app.task(name="herald.upkeep_schedule", queue=QUEUE, queueing_lock="upkeep-schedule")
@_database_job
def upkeep_schedule(timestamp: int) -> dict[str, int]:
    """Every 15 minutes: enqueue every organisation's upkeep, and keep the spare-schema pool full."""
    from tenants.provisioning import spare_pool_fill

    counts = upkeep_enqueue()
    counts["spare_schemas"] = spare_pool_fill()
    logger.info("upkeep enqueued: %s", counts)
    return counts


def organization_deleted_schedule(*, organization: Organization, deleted_schema: DeletedSchema, **_: Any) -> None:
    """tenants.signals.organization_deleted: enqueue the schema's drop, and the end of its Stripe billing."""
    from billing.models import StripeCustomer

    after = deleted_schema.deleted_at + timedelta(days=int(settings.HERALD_SCHEMA_DELETE_AFTER_DAYS))
    # In the deletion's transaction (Django's connection): a rolled-back deletion schedules nothing.
    deleted_schema_drop.configure(schedule_at=after).defer(organization_id=deleted_schema.organization_id)
    customer = StripeCustomer.objects.filter(organization=organization).first()
    if customer is not None:
        # The customer row goes with the organisation: the job is handed the Stripe customer id itself.
        stripe_subscriptions_cancel.defer(organization_id=organization.pk, customer_id=customer.customer_id)


@app.task(name="herald.stripe_subscriptions_cancel", queue=BILLING_QUEUE, retry=5)
@_database_job
def stripe_subscriptions_cancel(*, organization_id: int, customer_id: str) -> int:
    """A deleted organisation is billed no more: cancel its customer's live subscriptions at Stripe; how many."""
    from billing.services import stripe_subscriptions_cancel as cancel

    canceled = cancel(customer_id=customer_id)
    logger.info("deleted organisation %s: %s subscriptions of %s canceled", organization_id, canceled, customer_id)
    return canceled
