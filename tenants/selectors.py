"""Reads on organisations and signing secrets."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from tenants.models import Organization, SigningSecret


def signing_secrets_live_rows(*, organization: Organization) -> QuerySet[SigningSecret]:
    """The organisation's signing secrets still accepted, newest (the one to sign with) first."""
    return (
        SigningSecret.objects.filter(organization=organization)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .order_by("-id")
    )


def organization_get(*, slug: str) -> Organization | None:
    """The organisation with this slug, or None."""
    return Organization.objects.filter(slug=slug).first()
