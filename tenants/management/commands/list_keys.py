"""`herald list_keys SLUG`: prefixes and states, never full keys."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tenants.models import ApiKey, Organization


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


class Command(BaseCommand):
    help = "List an organisation's keys by prefix."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["slug"]).first()
        if organization is None:
            raise CommandError(f"no organization {options['slug']!r}")
        now = timezone.now()
        self.stdout.write("prefix\tkind\tstate\tname\tcreated\tlast_used\texpires\torigins")
        for key in ApiKey.objects.filter(organization=organization).order_by("id"):
            if key.revoked_at is not None:
                state = "revoked"
            elif key.expires_at is not None and key.expires_at <= now:
                state = "expired"
            elif key.expires_at is not None:
                state = "rolled"
            else:
                state = "live"
            origins = ",".join(key.allowed_origins) or "-"
            self.stdout.write(
                f"{key.prefix}\t{key.kind}\t{state}\t{key.name or '-'}\t{_when(key.created_at)}\t"
                f"{_when(key.last_used_at)}\t{_when(key.expires_at)}\t{origins}"
            )
