"""`herald revoke_key KEY_OR_PREFIX`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenants.management.commands._keys import api_key_find
from tenants.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke a key at once, by full key or visible prefix."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_or_prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        api_key = api_key_revoke(api_key=api_key_find(options["key_or_prefix"]))
        self.stdout.write(f"revoked {api_key.prefix} of {api_key.organization.slug}")
