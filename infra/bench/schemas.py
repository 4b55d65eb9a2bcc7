"""How many tenant schemas one PostgreSQL holds, and what migrating them all costs.

    .venv/bin/python infra/bench/schemas.py [--counts 100,500,1000,2000] [--migrate-at 500] [--samples 20]

Starts embedded PostgreSQL/Redis in a fresh folder (unless DATABASE_URL / REDIS_URL are set: then a fresh
database there), migrates, then provisions organisations (Herald's path with the spare pool off: a replay of
the template's DDL, tenants/provisioning.py) up to each count and prints, at each count:

- provisioning time per organisation over the last stretch (p50 / p99 ms);
- the size of the catalog (pg_catalog's relations) and of the whole database, and pg_class rows;
- a tenant read (`tenant_context` + one query on that organisation's inbox table) on random organisations,
  p50 / p99 ms, so a slower catalog shows up where requests feel it.

At --migrate-at organisations it times `migrate_schemas`: with nothing to apply (the check every deploy
pays), and rolling the newest `notifications` migration back and forward again in every schema (a
one-migration release) with django-tenants' multiprocessing executor (--executors adds standard).
Every loop is bounded by the counts given.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def timed(fn: object, *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="100,500,1000,2000")
    parser.add_argument("--migrate-at", type=int, default=500)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--executors", default="multiprocessing", help="standard,multiprocessing")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))
    os.environ["HERALD_SPARE_SCHEMAS"] = "0"
    # Plain connections: the multiprocessing executor forks, and a forked psycopg pool (its threads left
    # behind in the parent) hangs the children.
    os.environ["DATABASE_POOL_SIZE"] = "0"
    from infra.bench.common import django_on_fresh_services

    django_on_fresh_services()
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader
    from django_tenants.utils import tenant_context

    from notifications.models import InboxItem
    from tenants.models import Organization
    from tenants.services import organization_create

    call_command("migrate_schemas", interactive=False, verbosity=0)
    organization_create(name="warm-up", slug="warm-up")
    os.system("uptime")  # noqa: S605, S607 - how busy the machine was

    def catalog() -> tuple[int, int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pg_catalog'"
            )
            catalog_bytes = int(cursor.fetchone()[0])
            cursor.execute("SELECT pg_database_size(current_database()), (SELECT count(*) FROM pg_class)")
            database_bytes, relations = cursor.fetchone()
        return catalog_bytes, int(database_bytes), int(relations)

    def tenant_reads(samples: int) -> list[float]:
        organizations = list(Organization.objects.exclude(schema_name="public"))
        times = []
        for organization in random.sample(organizations, min(samples, len(organizations))):
            start = time.perf_counter()
            with tenant_context(organization):
                InboxItem.objects.filter(subscriber_id=1).exists()
            times.append(time.perf_counter() - start)
        return times

    print("\nTenant schemas in one PostgreSQL (ms; MiB)")
    print(
        f"{'schemas':>8} {'prov p50':>9} {'prov p99':>9} {'read p50':>9} {'read p99':>9} "
        f"{'catalog':>9} {'database':>9} {'pg_class':>9}",
        flush=True,
    )
    made = Organization.objects.exclude(schema_name="public").count()
    migrate_figures: list[str] = []
    for count in counts:
        stretch = []
        while made < count:
            slug = f"bench-{made:05d}"
            stretch.append(timed(organization_create, name=slug, slug=slug))
            made += 1
        catalog_bytes, database_bytes, relations = catalog()
        reads = tenant_reads(args.samples)
        prov = (percentile(stretch, 50) * 1000, percentile(stretch, 99) * 1000) if stretch else (0.0, 0.0)
        print(
            f"{count:>8} {prov[0]:>9.1f} {prov[1]:>9.1f} {percentile(reads, 50) * 1000:>9.2f} "
            f"{percentile(reads, 99) * 1000:>9.2f} {catalog_bytes / 2**20:>9.1f} {database_bytes / 2**20:>9.1f} "
            f"{relations:>9}",
            flush=True,
        )
        if count == args.migrate_at:
            loader = MigrationLoader(None, ignore_no_migrations=True)
            newest = max(name for app, name in loader.graph.leaf_nodes() if app == "notifications")
            previous = max(name for app, name in loader.graph.node_map if app == "notifications" and name < newest)
            schemas = Organization.objects.exclude(schema_name="public").count()
            noop = timed(call_command, "migrate_schemas", interactive=False, verbosity=0)
            migrate_figures.append(f"  nothing to apply, {schemas} organisations + template: {noop:.1f} s")
            for executor in args.executors.split(","):
                back = timed(
                    call_command, "migrate_schemas", "notifications", previous, interactive=False, verbosity=0,
                    executor=executor, tenant=True,
                )  # fmt: skip
                forward = timed(
                    call_command, "migrate_schemas", interactive=False, verbosity=0, executor=executor, tenant=True
                )
                migrate_figures.append(
                    f"  one migration ({newest}) in every schema, {executor} executor: forward {forward:.1f} s "
                    f"({forward / schemas * 1000:.0f} ms a schema), rolled back first in {back:.1f} s"
                )
            # Printed at once: the larger counts after it take long, and a stopped run keeps these.
            print(f"\nmigrate_schemas at {args.migrate_at} organisations", *migrate_figures, "", sep="\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
