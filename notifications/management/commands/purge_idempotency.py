"""`herald purge_idempotency [--hours 48]`: drop idempotency records past their retention, in every organisation.

Keys are honoured for 24 h (notifications.idempotency.IDEMPOTENCY_TTL_HOURS); run this
from cron, hourly say, so the table holds about a day of keys and no more.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from notifications.idempotency import IDEMPOTENCY_TTL_HOURS, idempotency_purge
from tenants.models import Organization


class Command(BaseCommand):
    help = "Delete idempotency records older than --hours (default 48, at least 24) in every organisation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hours", type=float, default=48.0)

    def handle(self, *args: Any, **options: Any) -> None:
        from datetime import timedelta

        hours = options["hours"]
        if hours < IDEMPOTENCY_TTL_HOURS:
            raise CommandError(f"--hours must be at least {IDEMPOTENCY_TTL_HOURS}: keys are honoured that long")
        total = 0
        for organization in Organization.objects.exclude(schema_name="public").order_by("id"):
            with tenant_context(organization):
                total += idempotency_purge(older_than=timedelta(hours=hours))
        self.stdout.write(f"deleted {total} idempotency records older than {hours:g} h")
