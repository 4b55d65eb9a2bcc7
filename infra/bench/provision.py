"""Time to create an organisation: Herald's provisioning against running migrations.

    .venv/bin/python infra/bench/provision.py [--samples 20] [--sizes 10,500]

Starts embedded PostgreSQL/Redis in a fresh folder (unless DATABASE_URL /
REDIS_URL are set, in which case it uses a fresh database there), then at each
size (number of existing organisations) creates `samples` organisations with
`organization_create` three ways, interleaved so all see the same machine:
claiming a spare schema from the pool (the pool filled beforehand, its
background refill off during the timing), replaying the template's DDL (pool
empty), and the way django-tenants does by default (CREATE SCHEMA + migrate).
Prints p50/p99 of each and the goals' verdicts (judged on Herald's default
path, the pool, and shown for the replay fallback too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--sizes", default="10,500")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    os.environ["HERALD_SPARE_SCHEMAS"] = "0"  # refills happen between timings, not during them
    from infra.bench.common import django_on_fresh_services

    django_on_fresh_services()
    from django.core.management import call_command

    from tenants.models import Organization, SpareSchema
    from tenants.provisioning import spare_pool_fill
    from tenants.services import organization_create, schema_name_for

    call_command("migrate_schemas", interactive=False, verbosity=0)
    organization_create(name="warm-up", slug="warm-up")  # first call dumps the template once per process

    from django.db import connection

    # django-tenants' migrate path closes the connection when it finishes; open
    # it again outside the timing so neither figure pays for a reconnect.
    def fast(slug: str) -> float:
        connection.ensure_connection()
        start = time.perf_counter()
        organization_create(name=slug, slug=slug)
        return time.perf_counter() - start

    def claimed(slug: str) -> float:
        spare_pool_fill(1)
        assert SpareSchema.objects.exists()
        return fast(slug)

    def replayed(slug: str) -> float:
        assert not SpareSchema.objects.exists()
        return fast(slug)

    def migrated(slug: str) -> float:
        connection.ensure_connection()
        start = time.perf_counter()
        organization = Organization(name=slug, slug=slug, schema_name=schema_name_for(slug))
        organization.auto_create_schema = True  # django-tenants' default path: CREATE SCHEMA + migrate
        organization.save(verbosity=0)
        return time.perf_counter() - start

    rows = []
    for size in sizes:
        existing = Organization.objects.count()
        if existing < size:
            print(f"filling to {size} organisations…", file=sys.stderr, flush=True)
            for _ in range(size - existing):
                organization_create(name="filler", slug=f"fill-{uuid.uuid4().hex[:12]}")
        fast_times, replay_times, migrate_times = [], [], []
        for _ in range(args.samples):
            replay_times.append(replayed(f"replay-{uuid.uuid4().hex[:12]}"))
            fast_times.append(claimed(f"claim-{uuid.uuid4().hex[:12]}"))
            migrate_times.append(migrated(f"mig-{uuid.uuid4().hex[:12]}"))
        count = Organization.objects.count()
        rows.append((size, count, fast_times, migrate_times, replay_times))

    print(f"\nOrganisation creation, {args.samples} samples per figure (ms)")
    header = ["existing", "claim p50", "claim p99", "replay p50", "replay p99", "migrate p50", "migrate p99"]
    print(" ".join(f"{h:>11}" for h in header) + f" {'claim x':>8} {'replay x':>8}")
    for size, _count, fast_times, migrate_times, replay_times in rows:
        figures = [percentile(times, q) * 1000 for times in (fast_times, replay_times, migrate_times) for q in (50, 99)]
        print(
            f"{size:>11} "
            + " ".join(f"{f:>11.1f}" for f in figures)
            + f" {figures[4] / figures[0]:>7.1f}x {figures[4] / figures[2]:>7.1f}x"
        )

    first, last = rows[0], rows[-1]
    first_p50 = statistics.median(first[2]) * 1000
    last_p50 = statistics.median(last[2]) * 1000
    worst_p50 = max(statistics.median(row[2]) * 1000 for row in rows)
    worst_ratio = min(statistics.median(row[3]) / statistics.median(row[2]) for row in rows)
    goals = [
        (f"p50 <= 100 ms at every size (worst {worst_p50:.1f} ms)", worst_p50 <= 100),
        (f">= 5x faster than migrating at every size (worst {worst_ratio:.1f}x)", worst_ratio >= 5),
        (
            f"no slower at {last[0]} than at {first[0]} organisations "
            f"({last_p50:.1f} vs {first_p50:.1f} ms; noise allowed: 25% or 2 ms)",
            last_p50 <= max(first_p50 * 1.25, first_p50 + 2),
        ),
    ]
    print()
    for text, ok in goals:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")
    return 0 if all(ok for _, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
