"""`herald list_organizations`: slugs, names, schemas and key counts."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db.models import Count, Q

from tenants.models import Organization


class Command(BaseCommand):
    help = "List organisations: slug, name, schema, plan, live keys, created."

    def handle(self, *args: Any, **options: Any) -> None:
        rows = Organization.objects.annotate(
            live_keys=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True))
        ).order_by("slug")
        self.stdout.write("slug\tname\tschema\tplan\tlive_keys\tcreated")
        for organization in rows:
            self.stdout.write(
                f"{organization.slug}\t{organization.name}\t{organization.schema_name}\t{organization.plan}\t"
                f"{organization.live_keys}\t{organization.created_at.isoformat(timespec='seconds')}"
            )
