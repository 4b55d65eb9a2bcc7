"""How a request finds its organisation, in one place.

- secret key (server API) and publishable key (widget HTTP and WebSocket):
  `api_key_resolve(key)`; the key's row is cached in Redis for a minute and
  dropped from the cache the moment it is revoked or rolled.
- portal: organisation slug in the URL plus the user's membership
  (`organization_for_member`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from django.core.cache import cache
from django.utils import timezone
from django_tenants.utils import schema_context

from tenants.keys import KeyKind, key_hash, key_kind
from tenants.models import ApiKey, Membership, Organization

KEY_CACHE_SECONDS = 60


@dataclass(frozen=True)
class ResolvedKey:
    """What a request needs to know about the key it came with."""

    api_key_id: int
    kind: KeyKind
    key_hash: str
    organization_id: int
    schema_name: str
    plan: str
    allowed_origins: tuple[str, ...]
    expires_at: datetime | None

    def organization(self) -> Organization:
        """An unsaved Organization carrying what tenant activation needs (no query)."""
        return Organization(id=self.organization_id, schema_name=self.schema_name, plan=self.plan)


def _cache_key(hashed: str) -> str:
    return f"apikey:{hashed}"


def api_key_cache_forget(hashed: str) -> None:
    """Drop a key from the cache so its new state applies at once."""
    with schema_context("public"):
        cache.delete(_cache_key(hashed))


def api_key_resolve(key: str) -> ResolvedKey | None:
    """The live key matching `key`, or None (malformed, unknown, revoked or expired)."""
    if key_kind(key) is None:
        return None
    hashed = key_hash(key)
    with schema_context("public"):
        resolved = cache.get(_cache_key(hashed))
        if resolved is None:
            row = ApiKey.objects.filter(key_hash=hashed, revoked_at__isnull=True).select_related("organization").first()
            if row is None:
                return None
            resolved = ResolvedKey(
                api_key_id=row.pk,
                kind=row.kind,  # type: ignore[arg-type]
                key_hash=row.key_hash,
                organization_id=row.organization_id,
                schema_name=row.organization.schema_name,
                plan=row.organization.plan,
                allowed_origins=tuple(row.allowed_origins),
                expires_at=row.expires_at,
            )
            cache.set(_cache_key(hashed), resolved, KEY_CACHE_SECONDS)
    if not hmac.compare_digest(resolved.key_hash, hashed):
        return None
    if resolved.expires_at is not None and resolved.expires_at <= timezone.now():
        return None
    return resolved


def organization_for_member(*, slug: str, user_id: int) -> tuple[Organization, Membership] | None:
    """The organisation `slug` and the user's membership of it, or None."""
    membership = (
        Membership.objects.select_related("organization").filter(organization__slug=slug, user_id=user_id).first()
    )
    if membership is None:
        return None
    return membership.organization, membership
