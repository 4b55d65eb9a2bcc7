"""A real Procrastinate worker for the tests: it runs every job that is due, then returns (bounded)."""

from __future__ import annotations

import asyncio
from typing import Any

from django.db import connection

WORKER_TIMEOUT = 60.0  # seconds: a worker that has not emptied the queue by then fails the test


async def run_worker_until_idle(*, queues: list[str] | None = None) -> None:
    """Run Procrastinate's worker on psycopg 3 (the `herald worker` connector) until no job is due."""
    from procrastinate.contrib.django import app

    with app.replace_connector(app.connector.get_worker_connector()):  # type: ignore[attr-defined]
        async with app.open_async():
            await asyncio.wait_for(
                app.run_worker_async(queues=queues, wait=False, install_signal_handlers=False, concurrency=1),
                timeout=WORKER_TIMEOUT,
            )


def jobs(task_name: str, **args: Any) -> list[tuple[str, dict[str, Any]]]:
    """(status, args) of the jobs of `task_name` whose args include `args`, oldest first."""
    import json

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, args FROM procrastinate_jobs WHERE task_name = %s AND args @> %s::jsonb ORDER BY id",
            [task_name, json.dumps(args)],
        )
        return [
            (status, json.loads(found) if isinstance(found, str) else dict(found))
            for status, found in cursor.fetchall()
        ]
