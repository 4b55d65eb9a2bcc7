"""What every benchmark starts with: fresh services and Django set up on them."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def django_on_fresh_services() -> None:
    """Embedded PostgreSQL/Redis in a new folder, or a new database on DATABASE_URL; then django.setup()."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "herald.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    if os.environ.get("DATABASE_URL"):
        import psycopg

        name = f"herald_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = os.environ["DATABASE_URL"].rpartition("/")
        os.environ["DATABASE_URL"] = f"{base}/{name}"
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        os.environ["HERALD_DATA_DIR"] = tempfile.mkdtemp(prefix="hb-", dir="/tmp")
        from herald.devservices import ensure_services

        ensure_services(quiet=True)

    import django

    django.setup()
