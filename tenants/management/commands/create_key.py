"""`herald create_key SLUG --kind secret|publishable [--name N] [--origin URL ...]`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import Organization
from tenants.services import api_key_create


class Command(BaseCommand):
    help = "Issue an API key. The full key is printed once, alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--kind", choices=["secret", "publishable"], required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--origin", action="append", default=[], help="allowed origin (publishable keys)")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["slug"]).first()
        if organization is None:
            raise CommandError(f"no organization {options['slug']!r}")
        if options["kind"] == "publishable" and not options["origin"]:
            self.stderr.write("warning: a publishable key without --origin is refused by every browser origin")
        try:
            issued = api_key_create(
                organization=organization,
                kind=options["kind"],
                name=options["name"],
                allowed_origins=options["origin"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"{options['kind']} key {issued.api_key.prefix} for {organization.slug}; shown once:")
        self.stdout.write(issued.key)
