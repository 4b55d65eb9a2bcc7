"""`herald billing_reconcile [--days 35]`: Herald's record of meter events sent against Stripe's meter summaries.

Prints one line per organisation and day; exits 1 when any day disagrees (so cron or CI can alert on it).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.metering import OverageReportError, meter_reconcile
from billing.stripe_api import BillingNotConfiguredError


class Command(BaseCommand):
    help = "Compare the meter events Herald recorded as sent with Stripe's meter event summaries, per day."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=35, help="how many days back (Stripe keeps 35)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["days"] <= 35:
            raise CommandError("--days must be between 1 and 35")
        try:
            rows = meter_reconcile(days=options["days"])
        except (BillingNotConfiguredError, OverageReportError) as exc:
            raise CommandError(str(exc)) from exc
        mismatches = 0
        for row in rows:
            verdict = "ok" if row.agrees else "MISMATCH"
            mismatches += not row.agrees
            self.stdout.write(
                f"{verdict} organisation {row.organization_id} customer {row.customer_id} {row.day}: "
                f"herald {row.recorded}, stripe {row.stripe}"
            )
        self.stdout.write(f"{len(rows)} days compared, {mismatches} mismatched")
        if mismatches:
            raise SystemExit(1)
