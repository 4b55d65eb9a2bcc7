"""`herald show_signing_secret SLUG`: the secret to sign subscriber ids with."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.selectors import organization_get, signing_secrets_live_rows


class Command(BaseCommand):
    help = (
        "Print the organisation's subscriber signing secret (alone on the last line) and any older secret "
        "still accepted during a rotation's grace period."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_get(slug=options["slug"])
        if organization is None:
            raise CommandError(f"no organization {options['slug']!r} (`herald list_organizations` lists them)")
        live = list(signing_secrets_live_rows(organization=organization))
        if not live:
            raise CommandError(f"{organization.slug} has no live signing secret: run `herald rotate_signing_secret`")
        current, *older = live
        for secret in older:
            assert secret.expires_at is not None
            self.stderr.write(
                f"an older secret is accepted until {secret.expires_at.isoformat(timespec='seconds')}: "
                f"{secret.secret[:9]}…"
            )
        self.stdout.write(
            f"signing secret of {organization.slug}: sign with it, hex(HMAC-SHA256(secret, subscriber id)):"
        )
        self.stdout.write(current.secret)
