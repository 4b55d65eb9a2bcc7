"""Reads for the portal's pages (public schema: organisations, keys, members, invitations, audit)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from tenants.models import ApiKey, AuditEntry, Invitation, Membership, Organization

AUDIT_PAGE = 50


def memberships_of(*, user_id: int) -> list[Membership]:
    """The user's memberships, with their organisations, by organisation name."""
    return list(
        Membership.objects.select_related("organization").filter(user_id=user_id).order_by("organization__name")
    )


def api_keys_of(*, organization: Organization) -> list[ApiKey]:
    """The organisation's keys, live ones first, newest first within each group."""
    keys = list(ApiKey.objects.select_related("created_by").filter(organization=organization).order_by("-id"))
    return sorted(keys, key=lambda key: key_state(key) != "live")


def key_state(key: ApiKey, now: datetime | None = None) -> str:
    """live, expiring (rolled, in its grace period), expired or revoked."""
    now = now or timezone.now()
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None:
        return "expired" if key.expires_at <= now else "expiring"
    return "live"


def members_of(*, organization: Organization) -> list[Membership]:
    """The organisation's members, owners first."""
    order = {"owner": 0, "admin": 1, "developer": 2, "viewer": 3}
    members = list(Membership.objects.select_related("user").filter(organization=organization).order_by("id"))
    return sorted(members, key=lambda m: order.get(m.role, 9))


def pending_invitations_of(*, organization: Organization) -> QuerySet[Invitation]:
    """Invitations not yet accepted or withdrawn."""
    return Invitation.objects.filter(organization=organization, accepted_at__isnull=True, revoked_at__isnull=True)


def audit_entries(
    *, organization: Organization, actor_id: int | None = None, action: str | None = None, before_id: int | None = None
) -> list[AuditEntry]:
    """One page of the organisation's audit log, newest first, filtered by actor and action."""
    entries = AuditEntry.objects.filter(organization=organization)
    if actor_id is not None:
        entries = entries.filter(actor_id=actor_id)
    if action:
        entries = entries.filter(action=action)
    if before_id is not None:
        entries = entries.filter(pk__lt=before_id)
    return list(entries.order_by("-id")[: AUDIT_PAGE + 1])
