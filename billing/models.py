"""Billing's durable rows, all in the public schema: Stripe customers, processed webhook events, meter reports."""

from __future__ import annotations

from django.db import models

from tenants.models import Organization


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
