"""Server time from sign-up to a working organisation, through the portal's real views and middleware.

    .venv/bin/python infra/bench/signup.py [--samples 10]

Starts embedded PostgreSQL/Redis in a fresh folder (or a fresh database on DATABASE_URL), fills the spare schema
pool, then per sample drives Django's handler in-process (so each figure is the server's own time, no network):
POST /accounts/signup/ (includes hashing the password), POST the e-mail confirmation link, POST /new (creates the
organisation with `organization_create`: a spare schema claimed, owner, signing secret, audit entry). Prints
p50/p99/max of each step and of the three together. The goal (under 1 s) is judged on the POST that creates the
organisation; the sign-up POST is dominated by the password hash (Argon2, deliberately costly), shown beside it.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

GOAL_SECONDS = 1.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()

    from infra.bench.common import django_on_fresh_services

    django_on_fresh_services()
    from django.conf import settings
    from django.core import mail
    from django.core.management import call_command
    from django.test import Client

    from tenants.models import Organization
    from tenants.provisioning import spare_pool_fill

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    call_command("migrate_schemas", interactive=False, verbosity=0)
    spare_pool_fill(args.samples + 1)

    steps: dict[str, list[float]] = {"signup": [], "confirm": [], "organization": [], "total": []}
    password = "bench password " + uuid.uuid4().hex
    for n in range(args.samples):
        email = f"bench-{uuid.uuid4().hex[:10]}@example.test"
        client = Client(REMOTE_ADDR=f"10.9.{n // 250}.{n % 250 + 1}", HTTP_HOST="127.0.0.1")

        def timed(step: str, path: str, data: dict[str, str], client: Client = client) -> None:
            started = time.perf_counter()
            response = client.post(path, data)
            steps[step].append(time.perf_counter() - started)
            assert response.status_code == 302, (step, response.status_code)

        timed("signup", "/accounts/signup/", {"email": email, "password1": password, "password2": password})
        found = re.search(r"(/accounts/confirm-email/\S+)", mail.outbox[-1].body)
        assert found, mail.outbox[-1].body
        timed("confirm", found.group(1), {})
        timed("organization", "/new", {"name": f"Bench {n}"})
        steps["total"].append(steps["signup"][-1] + steps["confirm"][-1] + steps["organization"][-1])
        assert Organization.objects.filter(memberships__user__email=email).exists()

    print(f"sign-up to a working organisation, {args.samples} samples, server time in ms:")
    for step, values in steps.items():
        ms = [v * 1000 for v in values]
        print(f"  {step:<13} p50 {statistics.median(ms):7.1f}  p99 {percentile(ms, 99):7.1f}  max {max(ms):7.1f}")
    worst = max(steps["organization"])
    verdict = "MET" if percentile(steps["organization"], 99) < GOAL_SECONDS else "MISSED"
    print(
        f"goal: p99 of POST /new (the organisation) under {GOAL_SECONDS * 1000:.0f} ms: {verdict} "
        f"(worst {worst * 1000:.1f} ms); the whole sign-up: p99 {percentile(steps['total'], 99) * 1000:.1f} ms"
    )
    return 0 if verdict == "MET" else 1


if __name__ == "__main__":
    raise SystemExit(main())
