"""Reads on the public schema's organisation data that the apps above share."""

from __future__ import annotations

from django.db import connection

from tenants.models import SigningSecret

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
