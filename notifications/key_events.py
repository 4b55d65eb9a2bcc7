"""How tenants' key events reach live sockets: receivers of tenants.signals, connected in NotificationsConfig.ready."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction

from notifications.proofs import signing_secrets_forget
from notifications.realtime import publish_key_expiring_after_commit, publish_key_revoked_after_commit
from tenants.models import ApiKey, SigningSecret
from tenants.signals import api_key_expiring, api_key_revoked, signing_secret_rotated


def on_api_key_revoked(*, api_key: ApiKey, **_: Any) -> None:
    """Sockets opened with a revoked publishable key close (4403) in every process, after commit."""
    if api_key.kind == ApiKey.Kind.PUBLISHABLE:
        publish_key_revoked_after_commit(organization_id=api_key.organization_id, api_key_id=api_key.pk)


def on_api_key_expiring(*, api_key: ApiKey, expires_at: datetime | None, **_: Any) -> None:
    """Sockets opened with a rolled publishable key close (4403) when its grace period ends, in every process."""
    if api_key.kind == ApiKey.Kind.PUBLISHABLE and expires_at is not None:
        publish_key_expiring_after_commit(
            organization_id=api_key.organization_id, api_key_id=api_key.pk, expires_at=expires_at
        )


def on_signing_secret_rotated(*, organization: Any, **_: Any) -> None:
    """This process forgets the organisation's cached signing secrets after commit (others re-read them on their
    next auth: notifications.delivery.SESSION_ASYNC_SQL checks the live secrets every time)."""
    organization_id = int(organization.pk)
    transaction.on_commit(lambda: signing_secrets_forget(organization_id))


def key_events_connect() -> None:
    """Connect the receivers (idempotent: each is connected once, under its own dispatch_uid)."""
    api_key_revoked.connect(on_api_key_revoked, sender=ApiKey, dispatch_uid="notifications.key_revoked")
    api_key_expiring.connect(on_api_key_expiring, sender=ApiKey, dispatch_uid="notifications.key_expiring")
    signing_secret_rotated.connect(
        on_signing_secret_rotated, sender=SigningSecret, dispatch_uid="notifications.signing_secret_rotated"
    )
