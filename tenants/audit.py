"""The audit log: who did what to an organisation, when, and from which IP.

The writing services call `audit_record` inside their own transaction, so an entry exists exactly when its
change does. `actor` and `ip` are None for the CLI and other code outside a request.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tenants.models import AuditEntry, Organization

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

Action = AuditEntry.Action


def _actor_label(actor: AbstractBaseUser | AnonymousUser | None) -> str:
    if actor is None or not actor.is_authenticated:
        return ""
    return str(getattr(actor, "email", "") or actor.get_username())


def audit_record(
    *,
    organization: Organization,
    action: str,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    ip: str | None = None,
    target: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write one audit entry (call it inside the transaction of the change it records)."""
    authenticated = actor is not None and actor.is_authenticated
    return AuditEntry.objects.create(
        organization=organization,
        action=action,
        actor_id=actor.pk if authenticated and actor is not None else None,
        actor_label=_actor_label(actor),
        ip=ip or None,
        target=target[:200],
        data=data or {},
    )


@transaction.atomic
def audit_purge(*, older_than: timedelta | None = None) -> int:
    """Delete audit entries older than the retention (a year by default); returns how many went."""
    age = older_than if older_than is not None else timedelta(days=settings.HERALD_AUDIT_RETENTION_DAYS)
    deleted, _ = AuditEntry.objects.filter(created_at__lt=timezone.now() - age).delete()
    return deleted
