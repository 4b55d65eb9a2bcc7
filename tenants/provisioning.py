"""Fast schema provisioning: spare schemas, and a replay of the template's DDL.

`migrate_schemas` keeps one extra schema, the template (settings.HERALD_TEMPLATE_SCHEMA),
migrated like every organisation. A new organisation's schema is the template's
`pg_dump --schema-only` with the schema name swapped, run in the caller's
transaction, plus the template's migration records. The dump is taken once per
process and taken again only when the template's migration records change.

On top of that, a small pool of spare schemas made the same way ahead of time
(settings.HERALD_SPARE_SCHEMAS): an organisation claims one in its own
transaction (`DELETE … FOR UPDATE SKIP LOCKED` + `ALTER SCHEMA … RENAME`, a
catalog update), and the pool is refilled in the background after commit. With
the pool empty, the schema is replayed inline. Spares carry the template's
migration fingerprint; `migrate_schemas` drops the stale ones and refills.

Why not django-tenants' clone (TENANT_BASE_SCHEMA): measured slower as schemas
accumulate (it reads the catalogs), it copies rows and sequence positions, and
it renames multi-column UNIQUE constraints to PostgreSQL's default names, so a
later RemoveConstraint migration fails on cloned schemas. pg_dump keeps names.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import subprocess
import threading
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, connections, transaction

from herald.compat import pgserver_bin_dir

logger = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_lock = threading.Lock()


@dataclass(frozen=True)
class _Dump:
    fingerprint: str
    ddl: str  # with the placeholder schema name __HERALD_SCHEMA__
    migrations: list[tuple[int, str, str, str]]  # id, app, name, applied (iso)


_cache: dict[str, _Dump] = {}


class TemplateMissingError(RuntimeError):
    """The template schema does not exist: run `herald migrate_schemas` first."""


def template_schema() -> str:
    return str(settings.HERALD_TEMPLATE_SCHEMA)


def _pg_dump_binary() -> str:
    bundled = pgserver_bin_dir()
    if bundled is not None and (bundled / "pg_dump").exists():
        return str(bundled / "pg_dump")
    found = shutil.which("pg_dump")
    if not found:
        raise RuntimeError("pg_dump not found: install PostgreSQL client tools or pgserver")
    return found


def _fingerprint(template: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f"{template}.django_migrations"])
        if cursor.fetchone()[0] is None:
            raise TemplateMissingError(f"template schema {template!r} is missing or unmigrated: run `herald migrate`")
        cursor.execute(
            f"SELECT md5(string_agg(app || '.' || name, ',' ORDER BY id)) FROM \"{template}\".django_migrations"
        )
        return str(cursor.fetchone()[0])


def _dump(template: str, fingerprint: str) -> _Dump:
    db = settings.DATABASES["default"]
    command = [
        _pg_dump_binary(),
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-comments",
        f"--schema={template}",
    ]
    env = {**os.environ, "PGDATABASE": str(db["NAME"]), "PGUSER": str(db["USER"] or "postgres")}
    if db.get("HOST"):
        env["PGHOST"] = str(db["HOST"])
    if db.get("PORT"):
        env["PGPORT"] = str(db["PORT"])
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"pg_dump of {template!r} failed ({done.returncode}): {done.stderr.strip()[:2000]}")
    output = done.stdout
    statements: list[str] = []
    for line in output.splitlines():
        stripped = line.strip()
        # Session settings from pg_dump would reset this connection's search_path.
        if not stripped or stripped.startswith("--") or stripped.startswith("SET ") or "set_config(" in stripped:
            continue
        statements.append(line)
    ddl = "\n".join(statements)
    qualified = re.compile(rf'(?<![\w"]){re.escape(template)}(?=\.)|"{re.escape(template)}"(?=\.)')
    ddl = qualified.sub("__HERALD_SCHEMA__", ddl)
    ddl = re.sub(rf"CREATE SCHEMA {re.escape(template)};", "CREATE SCHEMA __HERALD_SCHEMA__;", ddl)
    if template in ddl:
        raise RuntimeError(f"template schema name left in its DDL after substitution: {template}")
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT id, app, name, applied FROM "{template}".django_migrations ORDER BY id')
        migrations = [(row[0], row[1], row[2], row[3].isoformat()) for row in cursor.fetchall()]
    return _Dump(fingerprint=fingerprint, ddl=ddl, migrations=migrations)


def template_ddl(template: str | None = None) -> _Dump:
    """The template's DDL, dumped once per migration state."""
    template = template or template_schema()
    fingerprint = _fingerprint(template)
    cached = _cache.get(template)
    if cached is not None and cached.fingerprint == fingerprint:
        return cached
    with _lock:
        cached = _cache.get(template)
        if cached is None or cached.fingerprint != fingerprint:
            cached = _dump(template, fingerprint)
            _cache[template] = cached
    return cached


def schema_provision(schema_name: str, *, template: str | None = None) -> None:
    """Create `schema_name` as a copy of the template's structure, in the current transaction."""
    if not _SCHEMA_NAME.match(schema_name) or schema_name in ("public", template_schema()):
        raise ValueError(f"invalid schema name {schema_name!r}")
    dump = template_ddl(template)
    ddl = dump.ddl.replace("__HERALD_SCHEMA__", schema_name)
    with connection.cursor() as cursor:
        cursor.execute(ddl)
        if dump.migrations:
            cursor.execute(
                f"""INSERT INTO "{schema_name}".django_migrations (id, app, name, applied)
                    SELECT id, app, name, applied::timestamptz FROM json_to_recordset(%s::json)
                    AS r(id int, app text, name text, applied text)""",
                [_json(dump.migrations)],
            )
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                [f'"{schema_name}".django_migrations', max(m[0] for m in dump.migrations)],
            )


def _json(migrations: list[tuple[int, str, str, str]]) -> str:
    import json

    return json.dumps([{"id": i, "app": a, "name": n, "applied": t} for i, a, n, t in migrations])


def template_create_if_missing(template: str | None = None) -> bool:
    """Create the (empty) template schema; True when it was created."""
    template = template or template_schema()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [template])
        if cursor.fetchone():
            return False
        cursor.execute(f'CREATE SCHEMA "{template}"')
    return True


def spare_schema_create() -> str:
    """Provision one spare schema from the current template (own transaction)."""
    from tenants.models import SpareSchema

    name = f"spare_{secrets.token_hex(8)}"
    with transaction.atomic():
        fingerprint = template_ddl().fingerprint
        schema_provision(name)
        SpareSchema.objects.create(schema_name=name, fingerprint=fingerprint)
    return name


def schema_create(schema_name: str) -> str:
    """Create an organisation's schema in the caller's transaction: "claimed" a spare, or "replayed" DDL."""
    if not _SCHEMA_NAME.match(schema_name) or schema_name in ("public", template_schema()):
        raise ValueError(f"invalid schema name {schema_name!r}")
    fingerprint = _fingerprint(template_schema())
    with connection.cursor() as cursor:
        cursor.execute(
            """DELETE FROM tenants_spareschema WHERE id = (
                   SELECT id FROM tenants_spareschema WHERE fingerprint = %s
                   ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
               RETURNING schema_name""",
            [fingerprint],
        )
        row = cursor.fetchone()
        if row is not None:
            cursor.execute(f'ALTER SCHEMA "{row[0]}" RENAME TO "{schema_name}"')
    if row is None:
        schema_provision(schema_name)
    transaction.on_commit(spare_pool_refill_soon)
    return "claimed" if row is not None else "replayed"


def spare_pool_size() -> int:
    return int(getattr(settings, "HERALD_SPARE_SCHEMAS", 0))


def spare_pool_fill(target: int | None = None) -> int:
    """Top the pool up to `target` current spares; returns how many were made."""
    from tenants.models import SpareSchema

    target = spare_pool_size() if target is None else target
    fingerprint = _fingerprint(template_schema())
    made = 0
    while SpareSchema.objects.filter(fingerprint=fingerprint).count() < target:
        spare_schema_create()
        made += 1
    return made


def spare_pool_drop_stale() -> int:
    """Drop spares made from an older template; returns how many."""
    from tenants.models import SpareSchema

    fingerprint = _fingerprint(template_schema())
    dropped = 0
    for spare in SpareSchema.objects.exclude(fingerprint=fingerprint):
        with transaction.atomic():
            if SpareSchema.objects.filter(pk=spare.pk).delete()[0]:
                with connection.cursor() as cursor:
                    cursor.execute(f'DROP SCHEMA IF EXISTS "{spare.schema_name}" CASCADE')
                dropped += 1
    return dropped


_refill_lock = threading.Lock()


def spare_pool_refill_soon() -> None:
    """Refill the pool in a background thread (one at a time per process)."""
    if spare_pool_size() <= 0 or not _refill_lock.acquire(blocking=False):
        return

    def refill() -> None:
        try:
            spare_pool_fill()
        except Exception:  # noqa: BLE001 - the next claim replays instead; nothing is lost
            logger.warning("spare schema refill failed", exc_info=True)
        finally:
            connections.close_all()
            _refill_lock.release()

    threading.Thread(target=refill, name="herald-spare-schemas", daemon=True).start()
