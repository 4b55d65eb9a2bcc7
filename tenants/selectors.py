"""Reads on the public schema's organisation data: organisations and signing secrets."""

from __future__ import annotations

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from tenants.models import Organization, SigningSecret

# Schema-qualified, so it reads the same whatever schema the connection has active (no switch, one statement).
SIGNING_SECRETS_LIVE_SQL = f"""
SELECT secret FROM public.{SigningSecret._meta.db_table}
WHERE organization_id = %s AND (expires_at IS NULL OR expires_at > now()) ORDER BY id DESC
"""


def signing_secrets_live(organization_id: int) -> list[str]:
    """The organisation's signing secrets that are still valid, newest first (one statement)."""
    with connection.cursor() as cursor:
        cursor.execute(SIGNING_SECRETS_LIVE_SQL, [organization_id])
        return [row[0] for row in cursor.fetchall()]


def signing_secrets_live_rows(*, organization: Organization) -> QuerySet[SigningSecret]:
    """The organisation's signing secrets still accepted, as rows, newest (the one to sign with) first."""
    return (
        SigningSecret.objects.filter(organization=organization)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .order_by("-id")
    )


def organization_get(*, slug: str) -> Organization | None:
    """The organisation with this slug, or None."""
    return Organization.objects.filter(slug=slug).first()
