"""`herald rotate_signing_secret SLUG --grace SECONDS`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.selectors import organization_get
from tenants.services import signing_secret_rotate


class Command(BaseCommand):
    help = (
        "Issue a new subscriber signing secret; proofs signed with the old one keep working for --grace "
        "seconds. The new secret is the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--grace", type=int, required=True, help="seconds the old secret keeps working")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_get(slug=options["slug"])
        if organization is None:
            raise CommandError(f"no organization {options['slug']!r} (`herald list_organizations` lists them)")
        try:
            secret = signing_secret_rotate(organization=organization, overlap=timedelta(seconds=options["grace"]))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            f"rotated the signing secret of {organization.slug}: the old one is accepted for "
            f"{options['grace']} s more; new secret, shown once:"
        )
        self.stdout.write(secret.secret)
