"""`herald create_organization SLUG [--name NAME]`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.selectors import organization_get, signing_secrets_live_rows
from tenants.services import organization_create


class Command(BaseCommand):
    help = (
        "Create an organisation (its schema and signing secret); the signing secret is printed once, alone on "
        "the last line. Running it again for an unowned slug with the same name changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        slug, name = options["slug"], options["name"].strip()
        existing = organization_get(slug=slug)
        if existing is not None and name and name != existing.name:
            raise CommandError(
                f"organization {slug!r} already exists with the name {existing.name!r}, not {name!r}; "
                "nothing was changed (choose another slug)"
            )
        try:
            organization = organization_create(name=name or slug, slug=slug)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        if existing is not None:
            self.stdout.write(
                f"organization {organization.slug} (schema {organization.schema_name}) already exists; "
                f"`herald show_signing_secret {organization.slug}` prints its signing secret"
            )
            return
        secret = signing_secrets_live_rows(organization=organization).values_list("secret", flat=True).first()
        self.stdout.write(
            f"organization {organization.slug} (schema {organization.schema_name}) created; "
            "its subscriber signing secret (your backend signs subscriber ids with it), shown once:"
        )
        self.stdout.write(str(secret))
