"""Refuse to serve through a connection pooler that may be in transaction mode (PgBouncer and the like).

django-tenants names each organisation's schema with a session-level `SET search_path` and (with
TENANT_LIMIT_SET_CALLS) sets it again only when the tenant changes. A pooler in transaction mode hands each
transaction (each autocommit statement) to whichever server connection is free, so a `search_path` set by
one request can be the one another request's query runs under: organisation A's rows read or written for
organisation B. Nothing Herald could do per query closes that gap for the ORM, so Herald refuses.

A pooler is recognised without any configuration: the process id a server announces at connection
(BackendKeyData) is the one `pg_backend_pid()` returns, unless something between client and server answered
the handshake itself, as PgBouncer does. A pooler in session mode is safe (one server connection per client
for the whole session): say so with DATABASE_POOLER=session.
"""

from __future__ import annotations

import psycopg
from django.conf import settings

from herald.env import env_str


def pooler_detected() -> bool:
    """True when DATABASE_URL reaches PostgreSQL through a pooler that answered the handshake itself."""
    db = {key: str(value) for key, value in settings.DATABASES["default"].items() if isinstance(value, (str, int))}
    with psycopg.connect(
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        connect_timeout=10,
        autocommit=True,
        prepare_threshold=None,
    ) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        return row is None or int(row[0]) != conn.info.backend_pid


def pooler_refusal() -> str | None:
    """Why Herald must not serve on this database connection, or None."""
    declared = (env_str("DATABASE_POOLER") or "").strip().lower()
    if declared not in ("", "session"):
        return f"DATABASE_POOLER must be 'session' or unset, got {declared!r}"
    if declared == "session":
        return None
    try:
        detected = pooler_detected()
    except psycopg.Error as exc:
        return f"cannot reach the database at DATABASE_URL: {str(exc).strip().splitlines()[0]}"
    if not detected:
        return None
    return (
        "DATABASE_URL reaches PostgreSQL through a connection pooler (PgBouncer?). In transaction mode "
        "django-tenants' per-session search_path would cross organisations, so Herald refuses it: connect "
        "directly, or run the pooler in session mode and set DATABASE_POOLER=session"
    )
