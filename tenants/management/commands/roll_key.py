"""`herald roll_key KEY_OR_PREFIX --grace SECONDS`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.management.commands._keys import api_key_find
from tenants.services import api_key_roll


class Command(BaseCommand):
    help = "Issue a replacement key; the old one keeps working for --grace seconds. The new key is the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_or_prefix")
        parser.add_argument("--grace", type=int, required=True, help="seconds the old key keeps working")

    def handle(self, *args: Any, **options: Any) -> None:
        old = api_key_find(options["key_or_prefix"])
        try:
            issued = api_key_roll(api_key=old, grace=timedelta(seconds=options["grace"]))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        old.refresh_from_db(fields=["expires_at"])
        assert old.expires_at is not None
        self.stdout.write(
            f"rolled {old.prefix} of {old.organization.slug}: it expires at "
            f"{old.expires_at.isoformat(timespec='seconds')}; new key {issued.api_key.prefix}, shown once:"
        )
        self.stdout.write(issued.key)
