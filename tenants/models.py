"""Organisations (tenants), their domains, members, API keys and signing secrets.

All of these live in the public schema; each organisation's own data lives in
its schema (see notifications.models).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django_tenants.models import DomainMixin, TenantMixin


class Organization(TenantMixin):
    """A customer organisation: one PostgreSQL schema of its own."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    plan = models.CharField(max_length=32, default="free")

    # Schemas are provisioned by tenants.provisioning, never by django-tenants' save().
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.slug


class Domain(DomainMixin):
    """A host name that names an organisation (custom domains)."""


class Membership(models.Model):
    """A user's role in an organisation."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        DEVELOPER = "developer", "Developer"
        VIEWER = "viewer", "Viewer"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.organization_id}:{self.role}"


class ApiKey(models.Model):
    """A secret or publishable key; only its SHA-256 and a visible prefix are stored."""

    class Kind(models.TextChoices):
        SECRET = "secret", "Secret"
        PUBLISHABLE = "publishable", "Publishable"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=32, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    allowed_origins = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set on the old key when it is rolled: it keeps working until then.
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    rolled_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["organization", "kind"], name="apikey_org_kind", condition=Q(revoked_at__isnull=True))
        ]

    def __str__(self) -> str:
        return f"{self.prefix}…"


class SigningSecret(models.Model):
    """The secret a customer's backend signs subscriber proofs with (HMAC / HS256)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="signing_secrets")
    secret = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    # Rotation keeps the previous secret valid until expires_at.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"signing secret {self.pk} of {self.organization_id}"


class SpareSchema(models.Model):
    """A schema provisioned ahead of time; a new organisation claims one by renaming it.

    `fingerprint` is the template's migration state it was made from: a spare
    made before a migration is never claimed (migrate_schemas drops it).
    """

    schema_name = models.CharField(max_length=63, unique=True)
    fingerprint = models.CharField(max_length=32, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.schema_name


class Invitation(models.Model):
    """An invitation to join an organisation, sent by e-mail as a signed link; it works once."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"invitation of {self.email} to {self.organization_id}"


class AuditEntry(models.Model):
    """Who did what to an organisation, when, and from which IP; written in the same transaction as the change."""

    class Action(models.TextChoices):
        KEY_CREATED = "key.created", "Key created"
        KEY_ROLLED = "key.rolled", "Key rolled"
        KEY_REVOKED = "key.revoked", "Key revoked"
        KEY_ORIGINS_CHANGED = "key.origins_changed", "Key origins changed"
        SIGNING_SECRET_ROTATED = "signing_secret.rotated", "Signing secret rotated"
        SIGNING_SECRET_REVEALED = "signing_secret.revealed", "Signing secret revealed"
        MEMBER_INVITED = "member.invited", "Member invited"
        MEMBER_JOINED = "member.joined", "Member joined"
        MEMBER_ROLE_CHANGED = "member.role_changed", "Member role changed"
        MEMBER_REMOVED = "member.removed", "Member removed"
        PLAN_CHANGED = "plan.changed", "Plan changed"
        ORGANIZATION_CREATED = "organization.created", "Organisation created"
        ORGANIZATION_SETTINGS_CHANGED = "organization.settings_changed", "Organisation settings changed"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="audit_entries")
    action = models.CharField(max_length=48, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as written: the actor's account may be deleted, the record stays readable.
    actor_label = models.CharField(max_length=254, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    target = models.CharField(max_length=200, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["organization", "-id"], name="audit_org_recent")]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label or 'system'} on {self.organization_id}"


class DeletedSchema(models.Model):
    """The schema of a deleted organisation: renamed out of the way at once, dropped some days later.

    The organisation's row is gone (its keys stopped at once); this row is what remembers its data until a
    background job drops the schema, HERALD_SCHEMA_DELETE_AFTER_DAYS after `deleted_at`.
    """

    organization_id = models.BigIntegerField(unique=True)  # the deleted organisation's id
    slug = models.CharField(max_length=63)
    schema_name = models.CharField(max_length=63, unique=True)  # the schema's name since the deletion
    deleted_at = models.DateTimeField(db_index=True)
    dropped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.schema_name} (organisation {self.organization_id}, {self.slug})"
