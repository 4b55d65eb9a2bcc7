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

from tenants.audit import audit_record
from tenants.keys import KeyKind, key_generate, key_hash, key_prefix
from tenants.models import ApiKey, AuditEntry, DeletedSchema, Invitation, Membership, Organization, SigningSecret
from tenants.provisioning import schema_create
from tenants.signals import (
    api_key_expiring,
    api_key_revoked,
    organization_deleted,
    organization_plan_changed,
    signing_secret_rotated,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

    Actor = AbstractBaseUser | AnonymousUser | None

Audit = AuditEntry.Action

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


def organization_create(*, name: str, slug: str, owner: User | None = None, ip: str | None = None) -> Organization:
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
            audit_record(organization=organization, action=Audit.ORGANIZATION_CREATED, actor=owner, ip=ip, target=slug)
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


@transaction.atomic
def api_key_create(
    *,
    organization: Organization,
    kind: KeyKind,
    name: str = "",
    allowed_origins: list[str] | None = None,
    actor: Actor = None,
    ip: str | None = None,
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
        created_by_id=actor.pk if actor is not None and actor.is_authenticated else None,
    )
    audit_record(
        organization=organization,
        action=Audit.KEY_CREATED,
        actor=actor,
        ip=ip,
        target=api_key.prefix,
        data={"kind": kind, "name": name},
    )
    from tenants.resolve import api_key_cache_prime

    transaction.on_commit(lambda: api_key_cache_prime(api_key))
    return IssuedKey(api_key=api_key, key=key)


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: Actor = None, ip: str | None = None) -> ApiKey:
    """Revoke a key at once (idempotent)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(
            organization=api_key.organization, action=Audit.KEY_REVOKED, actor=actor, ip=ip, target=api_key.prefix
        )
    from tenants.resolve import api_key_cache_forget

    api_key_cache_forget(api_key.key_hash)
    api_key_revoked.send(sender=ApiKey, api_key=api_key)
    return api_key


@transaction.atomic
def api_key_roll(*, api_key: ApiKey, grace: timedelta, actor: Actor = None, ip: str | None = None) -> IssuedKey:
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
        actor=actor,
        ip=ip,
    )
    audit_record(
        organization=api_key.organization,
        action=Audit.KEY_ROLLED,
        actor=actor,
        ip=ip,
        target=api_key.prefix,
        data={"grace_seconds": int(grace.total_seconds()), "new_prefix": issued.api_key.prefix},
    )
    expires = timezone.now() + grace
    if api_key.expires_at is None or expires < api_key.expires_at:
        api_key.expires_at = expires
    api_key.rolled_to = issued.api_key
    api_key.save(update_fields=["expires_at", "rolled_to"])
    from tenants.resolve import api_key_cache_forget

    transaction.on_commit(lambda: api_key_cache_forget(api_key.key_hash))
    api_key_expiring.send(sender=ApiKey, api_key=api_key, expires_at=api_key.expires_at)
    return issued


@transaction.atomic
def signing_secret_rotate(
    *,
    organization: Organization,
    overlap: timedelta = timedelta(hours=24),
    actor: Actor = None,
    ip: str | None = None,
) -> SigningSecret:
    """Issue a new subscriber signing secret; current ones stay valid for `overlap`."""
    if overlap < timedelta(0) or overlap > timedelta(days=30):
        raise ValidationError("grace must be between 0 seconds and 30 days", code="invalid_grace")
    audit_record(
        organization=organization,
        action=Audit.SIGNING_SECRET_ROTATED,
        actor=actor,
        ip=ip,
        data={"overlap_seconds": int(overlap.total_seconds())},
    )
    now = timezone.now()
    expires = now + overlap
    # Secrets already in a grace period keep the earlier of their end and the new one.
    SigningSecret.objects.filter(organization=organization, expires_at__isnull=True).update(expires_at=expires)
    SigningSecret.objects.filter(organization=organization, expires_at__gt=expires).update(expires_at=expires)
    signing_secret = SigningSecret.objects.create(organization=organization, secret=_signing_secret())
    signing_secret_rotated.send(sender=SigningSecret, organization=organization, signing_secret=signing_secret)
    return signing_secret


# --- keys: allowed origins ---------------------------------------------------------


@transaction.atomic
def api_key_origins_set(
    *, api_key: ApiKey, allowed_origins: list[str], actor: Actor = None, ip: str | None = None
) -> ApiKey:
    """Replace a publishable key's allowed origins (each normalised; an empty list allows no browser origin)."""
    from tenants.origins import origin_normalize
    from tenants.resolve import api_key_cache_forget

    if api_key.kind != ApiKey.Kind.PUBLISHABLE:
        raise ValidationError("only publishable keys take allowed origins", code="origins_on_secret_key")
    if api_key.revoked_at is not None:
        raise ValidationError("a revoked key cannot be changed", code="key_revoked")
    origins = list(dict.fromkeys(origin_normalize(origin) for origin in allowed_origins))
    before = list(api_key.allowed_origins)
    api_key.allowed_origins = origins
    api_key.save(update_fields=["allowed_origins"])
    audit_record(
        organization=api_key.organization,
        action=Audit.KEY_ORIGINS_CHANGED,
        actor=actor,
        ip=ip,
        target=api_key.prefix,
        data={"before": before, "after": origins},
    )
    transaction.on_commit(lambda: api_key_cache_forget(api_key.key_hash))
    return api_key


def signing_secret_reveal(*, organization: Organization, actor: Actor = None, ip: str | None = None) -> SigningSecret:
    """The organisation's current signing secret, its reading recorded in the audit log."""
    with transaction.atomic():
        secret = SigningSecret.objects.filter(organization=organization, expires_at__isnull=True).first()
        if secret is None:
            secret = SigningSecret.objects.create(organization=organization, secret=_signing_secret())
        audit_record(organization=organization, action=Audit.SIGNING_SECRET_REVEALED, actor=actor, ip=ip)
    return secret


# --- organisations -------------------------------------------------------------------


@transaction.atomic
def organization_rename(
    *, organization: Organization, name: str, actor: Actor = None, ip: str | None = None
) -> Organization:
    """Change the organisation's display name (its slug and schema never change)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationError("the name must be 1-200 characters", code="invalid_name")
    before = organization.name
    if name != before:
        organization.name = name
        organization.save(update_fields=["name"])
        audit_record(
            organization=organization,
            action=Audit.ORGANIZATION_SETTINGS_CHANGED,
            actor=actor,
            ip=ip,
            data={"name": {"before": before, "after": name}},
        )
    return organization


@transaction.atomic
def organization_plan_change(
    *, organization: Organization, plan: str, actor: Actor = None, ip: str | None = None
) -> Organization:
    """Move the organisation to another plan (billing calls this once Stripe says so)."""
    before = organization.plan
    if plan != before:
        organization.plan = plan
        organization.save(update_fields=["plan"])
        audit_record(
            organization=organization,
            action=Audit.PLAN_CHANGED,
            actor=actor,
            ip=ip,
            data={"before": before, "after": plan},
        )
        hashes = list(ApiKey.objects.filter(organization=organization).values_list("key_hash", flat=True))

        def forget() -> None:
            from tenants.resolve import api_key_cache_forget

            for hashed in hashes:
                api_key_cache_forget(hashed)

        transaction.on_commit(forget)
        organization_plan_changed.send(sender=Organization, organization=organization, before=before, after=plan)
    return organization


@transaction.atomic
def organization_delete(*, organization: Organization) -> DeletedSchema:
    """Delete the organisation: its keys stop at once, its rows go, its schema waits to be dropped.

    The schema is renamed `deleted_<id>` (so the slug can be taken again) and recorded as a DeletedSchema;
    `deleted_schema_drop` drops it HERALD_SCHEMA_DELETE_AFTER_DAYS later.
    """
    from django.db import connection

    from tenants.resolve import api_key_cache_forget

    hashes = list(ApiKey.objects.filter(organization=organization).values_list("key_hash", flat=True))
    deleted = DeletedSchema.objects.create(
        organization_id=organization.pk,
        slug=organization.slug,
        schema_name=f"deleted_{organization.pk}",
        deleted_at=timezone.now(),
    )
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER SCHEMA "{organization.schema_name}" RENAME TO "{deleted.schema_name}"')
    # Before the rows go, so receivers can still read what the organisation had (its Stripe customer).
    organization_deleted.send(sender=Organization, organization=organization, deleted_schema=deleted)
    Organization.objects.filter(pk=organization.pk).delete()

    def forget() -> None:
        for hashed in hashes:
            api_key_cache_forget(hashed)

    transaction.on_commit(forget)
    return deleted


def deleted_schema_drop(*, organization_id: int) -> bool:
    """Drop the schema of the deleted organisation `organization_id` once its wait is over; whether it dropped."""
    from django.conf import settings
    from django.db import connection

    due = timezone.now() - timedelta(days=int(settings.HERALD_SCHEMA_DELETE_AFTER_DAYS))
    with transaction.atomic():
        deleted = (
            DeletedSchema.objects.select_for_update()
            .filter(organization_id=organization_id, dropped_at__isnull=True, deleted_at__lte=due)
            .first()
        )
        if deleted is None:
            return False
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{deleted.schema_name}" CASCADE')
        deleted.dropped_at = timezone.now()
        deleted.save(update_fields=["dropped_at"])
    return True


# --- members and invitations ------------------------------------------------------------


class LastOwnerError(ValidationError):
    pass


def _owners_left_without(membership: Membership) -> int:
    return (
        Membership.objects.select_for_update()
        .filter(organization_id=membership.organization_id, role=Membership.Role.OWNER)
        .exclude(pk=membership.pk)
        .count()
    )


@transaction.atomic
def membership_invite(
    *, organization: Organization, email: str, role: str, actor: Actor = None, ip: str | None = None
) -> Invitation:
    """Record an invitation of `email` as `role` (the caller sends the signed link after commit)."""
    from django.core.validators import validate_email

    email = email.strip().lower()
    validate_email(email)
    if role not in Membership.Role.values:
        raise ValidationError(f"unknown role {role!r}", code="invalid_role")
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise ValidationError(f"{email} is already a member", code="already_member")
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        invited_by_id=actor.pk if actor is not None and actor.is_authenticated else None,
    )
    audit_record(
        organization=organization, action=Audit.MEMBER_INVITED, actor=actor, ip=ip, target=email, data={"role": role}
    )
    return invitation


@transaction.atomic
def invitation_accept(*, invitation_id: int, user: User, ip: str | None = None) -> Membership:
    """Turn an invitation into a membership; it works once, for the invited address only."""
    invitation = Invitation.objects.select_for_update().select_related("organization").filter(pk=invitation_id).first()
    if invitation is None or invitation.revoked_at is not None:
        raise ValidationError("this invitation was withdrawn", code="invitation_revoked")
    if invitation.accepted_at is not None:
        raise ValidationError("this invitation has been used already", code="invitation_used")
    if (user.email or "").strip().lower() != invitation.email:
        raise ValidationError(f"this invitation was sent to {invitation.email}", code="invitation_other_email")
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    membership, created = Membership.objects.get_or_create(
        organization=invitation.organization, user=user, defaults={"role": invitation.role}
    )
    if created:
        audit_record(
            organization=invitation.organization,
            action=Audit.MEMBER_JOINED,
            actor=user,
            ip=ip,
            target=invitation.email,
            data={"role": invitation.role},
        )
    return membership


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Actor = None, ip: str | None = None) -> Invitation:
    """Withdraw an invitation that has not been accepted (idempotent)."""
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit_record(
            organization=invitation.organization,
            action=Audit.MEMBER_REMOVED,
            actor=actor,
            ip=ip,
            target=invitation.email,
            data={"invitation": "withdrawn"},
        )
    return invitation


@transaction.atomic
def membership_role_change(
    *, membership: Membership, role: str, actor: Actor = None, ip: str | None = None
) -> Membership:
    """Give a member another role; the last owner cannot be demoted."""
    if role not in Membership.Role.values:
        raise ValidationError(f"unknown role {role!r}", code="invalid_role")
    membership = Membership.objects.select_for_update().select_related("user", "organization").get(pk=membership.pk)
    before = membership.role
    if role == before:
        return membership
    if before == Membership.Role.OWNER and _owners_left_without(membership) == 0:
        raise LastOwnerError("the last owner cannot be demoted: make someone else owner first", code="last_owner")
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        organization=membership.organization,
        action=Audit.MEMBER_ROLE_CHANGED,
        actor=actor,
        ip=ip,
        target=membership.user.email or membership.user.get_username(),
        data={"before": before, "after": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: Actor = None, ip: str | None = None) -> None:
    """Remove a member (or let one leave); the last owner cannot go."""
    membership = Membership.objects.select_for_update().select_related("user", "organization").get(pk=membership.pk)
    if membership.role == Membership.Role.OWNER and _owners_left_without(membership) == 0:
        raise LastOwnerError(
            "the last owner cannot leave or be removed: make someone else owner first", code="last_owner"
        )
    audit_record(
        organization=membership.organization,
        action=Audit.MEMBER_REMOVED,
        actor=actor,
        ip=ip,
        target=membership.user.email or membership.user.get_username(),
        data={"role": membership.role},
    )
    membership.delete()
