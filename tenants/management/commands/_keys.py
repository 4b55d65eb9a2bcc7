"""Finding a key from what an operator pastes: the full key or its visible prefix."""

from __future__ import annotations

from django.core.management.base import CommandError

from tenants.keys import VISIBLE_LENGTH, key_hash, key_kind
from tenants.models import ApiKey


def api_key_find(key_or_prefix: str) -> ApiKey:
    """The one key named by a full key or by a prefix that matches exactly one key."""
    value = key_or_prefix.strip()
    if key_kind(value) is not None:
        found = ApiKey.objects.select_related("organization").filter(key_hash=key_hash(value)).first()
        if found is None:
            raise CommandError("no such key")
        return found
    if not value.startswith(("sk_live_", "pk_live_")) or len(value) < VISIBLE_LENGTH:
        raise CommandError(f"not a key or key prefix: give the full key or its first {VISIBLE_LENGTH} characters")
    matches = list(ApiKey.objects.select_related("organization").filter(prefix=value[:VISIBLE_LENGTH])[:2])
    if not matches or (len(value) > VISIBLE_LENGTH):
        raise CommandError("no such key (a full key must have a valid checksum)")
    if len(matches) > 1:
        raise CommandError("the prefix matches several keys: give the full key")
    return matches[0]
