"""The usage ledger and the durable records it is computed from (public schema: billing is a shared app).

`UsageDay` is a cache of figures that `billing.usage.usage_rollup` recomputes from durable rows at any time:
the tenant schema's messages and inbox items (sends, recipients, delivery receipts) and the two records
below, which the socket side writes (billing.connections): which subscribers had a socket on a day, and
each process's most sockets per organisation per minute. Redis holds none of it.
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
