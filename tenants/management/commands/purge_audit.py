"""`herald purge_audit [--days N]`: delete audit entries older than the retention (a year)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.audit import audit_purge


class Command(BaseCommand):
    help = "Delete audit log entries older than the retention (HERALD_AUDIT_RETENTION_DAYS, 365 by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=settings.HERALD_AUDIT_RETENTION_DAYS)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 1:
            raise CommandError("--days must be at least 1")
        deleted = audit_purge(older_than=timedelta(days=options["days"]))
        self.stdout.write(f"deleted {deleted} audit entries older than {options['days']} days")
