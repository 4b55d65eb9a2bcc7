"""`herald create_organization SLUG [--name NAME]`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.services import organization_create


class Command(BaseCommand):
    help = "Create an organisation (its schema and signing secret). Idempotent for an unowned slug."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            organization = organization_create(name=options["name"] or options["slug"], slug=options["slug"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"organization {organization.slug} (schema {organization.schema_name}) ready")
