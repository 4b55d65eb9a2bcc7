"""Organisation provisioning: isolation, slugs, idempotency, schema identity."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context, tenant_context

from notifications.models import Subscriber
from tenants.models import Organization
from tenants.provisioning import schema_provision, template_create_if_missing
from tenants.services import SlugTakenError, organization_create, schema_name_for, slug_validate
from tests.conftest import Org, make_user, unique_slug


def test_row_written_in_acme_is_invisible_from_globex(acme: Org, globex: Org) -> None:
    with tenant_context(acme.organization):
        Subscriber.objects.create(external_id="only-in-acme")
    with tenant_context(globex.organization):
        assert not Subscriber.objects.filter(external_id="only-in-acme").exists()
        assert Subscriber.objects.count() == 0
    with tenant_context(acme.organization):
        assert Subscriber.objects.filter(external_id="only-in-acme").count() == 1


def test_each_organization_has_its_own_schema(acme: Org, globex: Org) -> None:
    assert acme.schema_name != globex.schema_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname IN (%s, %s)", [acme.schema_name, globex.schema_name]
        )
        assert len(cursor.fetchall()) == 2


@pytest.mark.parametrize(
    "slug",
    ["a", "A-corp", "1corp", "-corp", "corp-", "co--rp", "co_rp", "corp!", "x" * 64, "admin", "api", "www", "herald-x"],
)
def test_bad_or_reserved_slug_is_refused(slug: str) -> None:
    with pytest.raises(ValidationError):
        slug_validate(slug)
    with pytest.raises(ValidationError):
        organization_create(name="Bad", slug=slug)
    assert not Organization.objects.filter(slug=slug).exists()


@pytest.mark.parametrize("slug", ["ab", "acme", "acme-2", "a" + "b" * 62])
def test_good_slug_is_accepted(slug: str) -> None:
    slug_validate(slug)
    assert len(schema_name_for(slug)) <= 63


def test_create_is_idempotent_on_retry() -> None:
    owner = make_user("owner")
    slug = unique_slug("retry")
    first = organization_create(name="Retry", slug=slug, owner=owner)
    again = organization_create(name="Retry", slug=slug, owner=owner)
    assert again.pk == first.pk
    assert Organization.objects.filter(slug=slug).count() == 1
    with pytest.raises(SlugTakenError):
        organization_create(name="Thief", slug=slug, owner=make_user("thief"))


def _catalog(schema: str) -> dict[str, list[tuple]]:
    """What makes two schemas the same: tables, columns, indexes, constraints, sequences, migrations."""
    queries = {
        "columns": """SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity
                      FROM information_schema.columns WHERE table_schema = %s ORDER BY 1, 2""",
        "indexes": "SELECT indexname, replace(indexdef, %s, 'S') FROM pg_indexes WHERE schemaname = %s ORDER BY 1",
        "constraints": """SELECT conrelid::regclass::text, conname, contype,
                                 replace(pg_get_constraintdef(c.oid), %s, 'S')
                          FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                          WHERE n.nspname = %s ORDER BY 2""",
        "sequences": """SELECT sequencename, start_value, last_value FROM pg_sequences
                        WHERE schemaname = %s AND sequencename <> 'django_migrations_id_seq' ORDER BY 1""",
        # Sorted by name: the order records were written in depends on migration history.
        "migrations": "SELECT app, name FROM {schema}.django_migrations ORDER BY app, name",
    }
    result: dict[str, list[tuple]] = {}
    with connection.cursor() as cursor:
        cursor.execute(f'SET search_path TO "{schema}"')
        for name, sql in queries.items():
            if name in ("indexes", "constraints"):
                cursor.execute(sql, [schema + ".", schema])
            elif name == "migrations":
                cursor.execute(sql.format(schema=f'"{schema}"'))
            else:
                cursor.execute(sql, [schema])
            rows = [
                tuple(str(v).replace(schema + ".", "S.") if v is not None else None for v in row)
                for row in cursor.fetchall()
            ]
            result[name] = rows
    connection.set_schema_to_public()
    return result


def _migrate(schema: str, *target: str) -> None:
    call_command("migrate_schemas", *target, schema_name=schema, interactive=False, verbosity=0)


def _drop(*schemas: str) -> None:
    with connection.cursor() as cursor:
        for schema in schemas:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_provisioned_schema_is_identical_to_a_migrated_one() -> None:
    suffix = unique_slug("x").replace("-", "_")
    migrated, provisioned = f"mig_{suffix}", f"prov_{suffix}"
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{migrated}"')
        _migrate(migrated)
        schema_provision(provisioned)
        assert _catalog(provisioned) == _catalog(migrated)
        catalog = _catalog(provisioned)
        assert ("notifications", "0002_constraints") in catalog["migrations"]
        assert any(row[1] == "inboxitem_unique_message" for row in catalog["constraints"])
        assert all(row[2] is None or row[2] == "None" for row in catalog["sequences"])  # never used: fresh
    finally:
        _drop(migrated, provisioned)


def test_later_migrations_apply_to_a_provisioned_schema() -> None:
    """Provision from a template at 0001, then migrate forward, back (RemoveConstraint) and forward."""
    suffix = unique_slug("y").replace("-", "_")
    old_template, provisioned, migrated = f"tmpl_{suffix}", f"prov_{suffix}", f"mig_{suffix}"
    try:
        template_create_if_missing(old_template)
        _migrate(old_template, "notifications", "0001_initial")
        schema_provision(provisioned, template=old_template)
        assert ("notifications", "0002_constraints") not in _catalog(provisioned)["migrations"]
        _migrate(provisioned)
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{migrated}"')
        _migrate(migrated)
        assert _catalog(provisioned) == _catalog(migrated)
        _migrate(provisioned, "notifications", "0001_initial")  # reverses 0002: RemoveConstraint by name
        _migrate(provisioned)
        assert _catalog(provisioned) == _catalog(migrated)
    finally:
        _drop(old_template, provisioned, migrated)


def test_provisioned_organization_works_end_to_end() -> None:
    org = organization_create(name="Fresh", slug=unique_slug("fresh"))
    with tenant_context(org):
        subscriber = Subscriber.objects.create(external_id="u1")
        assert subscriber.pk == 1  # sequences start fresh in a new schema
    with schema_context("public"):
        assert Organization.objects.get(slug=org.slug).schema_name == org.schema_name


def test_organization_claims_a_spare_schema_identical_to_a_migrated_one() -> None:
    from tenants.models import SpareSchema
    from tenants.provisioning import spare_pool_fill

    spare_pool_fill(1)
    spare = SpareSchema.objects.order_by("id").first()
    assert spare is not None
    org = organization_create(name="Claim", slug=unique_slug("claim"))
    assert not SpareSchema.objects.filter(pk=spare.pk).exists()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname IN (%s, %s)", [spare.schema_name, org.schema_name]
        )
        assert [row[0] for row in cursor.fetchall()] == [org.schema_name]  # renamed, not copied
    migrated = f"mig_{unique_slug('z').replace('-', '_')}"
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{migrated}"')
        _migrate(migrated)
        assert _catalog(org.schema_name) == _catalog(migrated)
    finally:
        _drop(migrated)
    with tenant_context(org):
        assert Subscriber.objects.create(external_id="u").pk == 1


def test_a_spare_from_an_older_template_is_never_claimed() -> None:
    from tenants.models import SpareSchema
    from tenants.provisioning import spare_pool_drop_stale, spare_schema_create

    name = spare_schema_create()
    SpareSchema.objects.exclude(schema_name=name).delete()  # only the stale one is on offer
    SpareSchema.objects.filter(schema_name=name).update(fingerprint="0" * 32)
    org = organization_create(name="Stale", slug=unique_slug("stale"))
    assert SpareSchema.objects.filter(schema_name=name).exists()  # not claimed: replayed instead
    assert org.schema_name != name
    assert spare_pool_drop_stale() == 1
    assert not SpareSchema.objects.filter(schema_name=name).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        assert cursor.fetchone() is None
