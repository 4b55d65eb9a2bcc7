"""`herald usage_rollup [--day YYYY-MM-DD] [--org SLUG]`: recompute the usage ledger of a day from durable rows."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.usage import usage_rollup_all
from tenants.models import Organization


class Command(BaseCommand):
    help = "Recompute the usage ledger of one UTC day (default yesterday) for every organisation, or one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--day", help="the UTC day, YYYY-MM-DD (default: yesterday)")
        parser.add_argument("--org", help="the organisation's slug (default: every organisation)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = date.fromisoformat(options["day"]) if options["day"] else timezone.now().date() - timedelta(days=1)
        except ValueError:
            raise CommandError(f"--day must be a date as YYYY-MM-DD, not {options['day']!r}") from None
        if day > timezone.now().date():
            raise CommandError(f"--day {day} is in the future")
        slug = options["org"]
        if slug is not None and not Organization.objects.filter(slug=slug).exists():
            raise CommandError(f"no organisation {slug!r}")
        rows = usage_rollup_all(day, slug=slug)
        for row in rows:
            self.stdout.write(
                f"{row.organization.slug} {row.day}: messages={row.messages} notifications={row.notifications} "
                f"live_deliveries={row.live_deliveries} active_subscribers={row.active_subscribers} "
                f"peak_connections={row.peak_connections} overage={row.overage}{' (test)' if row.test else ''}"
            )
        self.stdout.write(f"rolled up {len(rows)} organisation(s) for {day}")
