"""Writes on organisations, keys and signing secrets."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.keys import KeyKind, key_generate, key_hash, key_prefix
from tenants.models import ApiKey, Membership, Organization, SigningSecret
from tenants.provisioning import schema_create

if TYPE_CHECKING:
    from django.contrib.auth.models import User

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
RESERVED_SLUGS = frozenset(
    {
        "admin",
        "api",
        "app",
        "auth",
        "billing",
        "dashboard",
        "docs",
        "help",
        "herald",
        "internal",
        "login",
        "logout",
        "new",
        "portal",
        "public",
        "root",
        "settings",
        "signup",
        "static",
        "status",
        "support",
        "system",
        "template",
        "test",
        "v1",
        "widget",
        "www",
        "healthz",
        "readyz",
        "media",
    }
)


class SlugTakenError(ValidationError):
    pass


def slug_validate(slug: str) -> None:
    """Refuse slugs that are malformed or reserved."""
    if not SLUG_PATTERN.match(slug):
        raise ValidationError(
            "slug must be 2-63 characters: a lowercase letter, then lowercase letters, digits or hyphens",
            code="invalid_slug",
        )
    if slug.endswith("-") or "--" in slug:
        raise ValidationError("slug must not end with a hyphen or contain two in a row", code="invalid_slug")
    if slug in RESERVED_SLUGS or slug.startswith(("pg-", "herald-")):
        raise ValidationError(f"slug {slug!r} is reserved", code="reserved_slug")


def schema_name_for(slug: str) -> str:
    """The PostgreSQL schema of an organisation: org_<slug>, within the 63-byte limit."""
    name = "org_" + slug.replace("-", "_")
    if len(name) > 63:
        digest = hashlib.sha256(slug.encode()).hexdigest()[:8]
        name = name[:54] + "_" + digest
    return name


def organization_create(*, name: str, slug: str, owner: User | None = None) -> Organization:
    """Create an organisation with its schema, its owner and a signing secret.

    Idempotent: calling again with the same slug and owner returns the same
    organisation. A slug held by someone else raises SlugTakenError.
    """
    slug_validate(slug)
    name = name.strip() or slug
    existing = Organization.objects.filter(slug=slug).first()
    if existing is not None:
        return _same_or_taken(existing, owner)
    try:
        with transaction.atomic():
            organization = Organization(name=name, slug=slug, schema_name=schema_name_for(slug))
            organization.save()
            schema_create(organization.schema_name)
            if owner is not None:
                Membership.objects.create(organization=organization, user=owner, role=Membership.Role.OWNER)
            SigningSecret.objects.create(organization=organization, secret=_signing_secret())
    except IntegrityError:
        # A concurrent call created it first.
        existing = Organization.objects.filter(slug=slug).first()
        if existing is None:
            raise
        return _same_or_taken(existing, owner)
    return organization


def _same_or_taken(organization: Organization, owner: User | None) -> Organization:
    owners = set(organization.memberships.filter(role=Membership.Role.OWNER).values_list("user_id", flat=True))
    if (owner is None and not owners) or (owner is not None and owner.pk in owners):
        return organization
    raise SlugTakenError(f"slug {organization.slug!r} is taken", code="slug_taken")


def _signing_secret() -> str:
    return "whsk_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class IssuedKey:
    """A key as issued: `key` is the only time the full key is available."""

    api_key: ApiKey
    key: str


def api_key_create(
    *,
    organization: Organization,
    kind: KeyKind,
    name: str = "",
    allowed_origins: list[str] | None = None,
) -> IssuedKey:
    """Issue a new key; the full key is returned once and never stored."""
    from tenants.origins import origin_normalize

    origins = [origin_normalize(origin) for origin in (allowed_origins or [])]
    if kind == "secret" and origins:
        raise ValidationError("secret keys do not take allowed origins", code="origins_on_secret_key")
    key = key_generate(kind)
    api_key = ApiKey.objects.create(
        organization=organization,
        kind=kind,
        name=name,
        prefix=key_prefix(key),
        key_hash=key_hash(key),
        allowed_origins=origins,
    )
    return IssuedKey(api_key=api_key, key=key)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key at once (idempotent)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    from tenants.resolve import api_key_cache_forget

    api_key_cache_forget(api_key.key_hash)
    if api_key.kind == ApiKey.Kind.PUBLISHABLE:
        # Sockets opened with it close (4403) in every process. Imported here: notifications builds on tenants.
        from notifications.realtime import publish_key_revoked_after_commit

        publish_key_revoked_after_commit(organization_id=api_key.organization_id, api_key_id=api_key.pk)
    return api_key


@transaction.atomic
def api_key_roll(*, api_key: ApiKey, grace: timedelta) -> IssuedKey:
    """Issue a replacement key; the old one keeps working for `grace`, then expires."""
    if grace < timedelta(0) or grace > timedelta(days=30):
        raise ValidationError("grace must be between 0 seconds and 30 days", code="invalid_grace")
    api_key = ApiKey.objects.select_for_update(of=("self",)).select_related("rolled_to").get(pk=api_key.pk)
    if api_key.revoked_at is not None:
        raise ValidationError("a revoked key cannot be rolled", code="key_revoked")
    if api_key.rolled_to is not None:
        # A second roll would leave two live replacements of one key.
        raise ValidationError(
            f"key {api_key.prefix} was already rolled to {api_key.rolled_to.prefix}: "
            f"roll {api_key.rolled_to.prefix} instead, or revoke it",
            code="key_already_rolled",
        )
    issued = api_key_create(
        organization=api_key.organization,
        kind=api_key.kind,  # type: ignore[arg-type]
        name=api_key.name,
        allowed_origins=list(api_key.allowed_origins),
    )
    expires = timezone.now() + grace
    if api_key.expires_at is None or expires < api_key.expires_at:
        api_key.expires_at = expires
    api_key.rolled_to = issued.api_key
    api_key.save(update_fields=["expires_at", "rolled_to"])
    from tenants.resolve import api_key_cache_forget

    transaction.on_commit(lambda: api_key_cache_forget(api_key.key_hash))
    if api_key.kind == ApiKey.Kind.PUBLISHABLE and api_key.expires_at is not None:
        # Sockets opened with it close (4403) when the grace period ends, in every process.
        from notifications.realtime import publish_key_expiring_after_commit

        publish_key_expiring_after_commit(
            organization_id=api_key.organization_id, api_key_id=api_key.pk, expires_at=api_key.expires_at
        )
    return issued


@transaction.atomic
def signing_secret_rotate(*, organization: Organization, overlap: timedelta = timedelta(hours=24)) -> SigningSecret:
    """Issue a new subscriber signing secret; current ones stay valid for `overlap`."""
    if overlap < timedelta(0) or overlap > timedelta(days=30):
        raise ValidationError("grace must be between 0 seconds and 30 days", code="invalid_grace")
    now = timezone.now()
    expires = now + overlap
    # Secrets already in a grace period keep the earlier of their end and the new one.
    SigningSecret.objects.filter(organization=organization, expires_at__isnull=True).update(expires_at=expires)
    SigningSecret.objects.filter(organization=organization, expires_at__gt=expires).update(expires_at=expires)
    return SigningSecret.objects.create(organization=organization, secret=_signing_secret())
