"""Billing's durable rows, all in the public schema (billing is a shared app).

The usage ledger: `UsageDay` is a cache of figures that `billing.usage.usage_rollup` recomputes from durable
rows at any time: the tenant schema's messages and inbox items (sends, recipients, delivery receipts) and the
two records below it, which the socket side writes (billing.connections): which subscribers had a socket on a
day, and each process's most sockets per organisation per minute. Redis holds none of it.

Stripe: customers, processed webhook events, meter reports.
"""

from __future__ import annotations

from django.db import models

from tenants.models import Organization


class UsageDay(models.Model):
    """One organisation's figures for one UTC day, as the last rollup computed them."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="usage_days")
    day = models.DateField()
    # Named as GET /v1/usage names them: `messages` are the notifications accepted (one per send, what the
    # monthly quota counts), `notifications` the recipients written (inbox items, messages' recipient counts).
    messages = models.BigIntegerField(default=0)
    notifications = models.BigIntegerField(default=0)
    live_deliveries = models.BigIntegerField(default=0)  # inbox items first written to a socket that day
    active_subscribers = models.IntegerField(default=0)  # distinct subscribers with a socket, month to date
    peak_connections = models.IntegerField(default=0)  # most sockets open at once (per-minute samples)
    overage = models.BigIntegerField(default=0)  # messages over the plan's monthly quota that day
    plan = models.CharField(max_length=32, default="free")
    test = models.BooleanField(default=False)  # test data: recorded, never billed (overage 0)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["organization_id", "day"]
        constraints = [models.UniqueConstraint(fields=["organization", "day"], name="usageday_unique_day")]

    def __str__(self) -> str:
        return f"usage of {self.organization_id} on {self.day}"


class SubscriberActivity(models.Model):
    """A subscriber of the organisation had an authenticated socket on `day` (UTC)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    subscriber_pk = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "subscriber_pk"], name="subscriberactivity_unique_day"
            )
        ]

    def __str__(self) -> str:
        return f"subscriber {self.subscriber_pk} of {self.organization_id} on {self.day}"


class ConnectionSample(models.Model):
    """The most sockets of the organisation one process held at once within one minute (UTC)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    process = models.CharField(max_length=100)
    peak = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "minute", "process"], name="connectionsample_unique")
        ]
        indexes = [models.Index(fields=["organization", "minute"], name="connectionsample_org_minute")]

    def __str__(self) -> str:
        return f"{self.peak} sockets of {self.organization_id} at {self.minute} ({self.process})"


class StripeCustomer(models.Model):
    """The one Stripe Customer of an organisation, and the subscription state last read from Stripe."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="stripe_customer")
    customer_id = models.CharField(max_length=255, unique=True)
    subscription_id = models.CharField(max_length=255, blank=True, default="")
    subscription_status = models.CharField(max_length=32, blank=True, default="")
    price_id = models.CharField(max_length=255, blank=True, default="")
    # When Herald first saw the subscription past due (a failed renewal); cleared once it is paid.
    past_due_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.customer_id} ({self.organization_id})"


class StripeEvent(models.Model):
    """A webhook event Herald has processed: written in the same transaction as the event's effect."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


class MeterReport(models.Model):
    """One day of an organisation's overage as sent to Stripe's meter: what, when, and under which identifier."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # recorded, not yet acknowledged by Stripe (a re-run sends it again)
        SENT = "sent", "Sent"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="meter_reports")
    customer_id = models.CharField(max_length=255)
    event_name = models.CharField(max_length=100)
    period_start = models.DateField()
    quantity = models.BigIntegerField()
    # Stripe de-duplicates meter events by identifier: one per organisation, meter and day (re-runs never bill twice).
    identifier = models.CharField(max_length=100, unique=True)
    timestamp = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["period_start", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "event_name", "period_start"], name="meterreport_unique_day"
            ),
            models.CheckConstraint(condition=models.Q(quantity__gte=0), name="meterreport_quantity_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.identifier}: {self.quantity}"
