"""`herald worker`: the Procrastinate worker that runs Herald's background jobs (herald.tasks) until SIGTERM.

Jobs: retention, the idempotency purge, overage reporting, dropping deleted organisations' schemas, and the
periodic upkeep round that enqueues them every 15 minutes (and keeps the spare-schema pool full). The worker
talks to PostgreSQL through psycopg 3 (async) on the same DATABASES settings as Django.

`--once` enqueues an upkeep round, runs every job that is due, and exits: for cron, or a quick check.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

from herald.env import env_int


class Command(BaseCommand):
    help = "Run Herald's background jobs (Procrastinate) until SIGTERM; --once runs what is due and exits."
    requires_system_checks: list[str] = []  # `herald serve` and the deploy's migrate check; start fast

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="enqueue an upkeep round, run what is due, exit")
        parser.add_argument(
            "--concurrency",
            type=int,
            default=env_int("HERALD_WORKER_CONCURRENCY", 1, minimum=1, maximum=32),
            help="jobs run at the same time",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from procrastinate.contrib.django import app

        from herald.tasks import upkeep_schedule

        if options["once"]:
            upkeep_schedule.defer(timestamp=int(time.time()))  # type: ignore[call-arg]  # periodic task typing
        started = self._finished()
        with app.replace_connector(app.connector.get_worker_connector()):  # type: ignore[attr-defined]
            asyncio.run(self._run(app, once=options["once"], concurrency=options["concurrency"]))
        done = self._finished()
        self.stdout.write(
            f"worker: stopped; jobs succeeded {done['succeeded'] - started['succeeded']}, "
            f"failed {done['failed'] - started['failed']}"
        )

    async def _run(self, app: Any, *, once: bool, concurrency: int) -> None:
        async with app.open_async():
            worker = asyncio.create_task(
                app.run_worker_async(wait=not once, concurrency=concurrency, install_signal_handlers=False)
            )
            # SIGTERM / SIGINT cancel the worker, which Procrastinate turns into a graceful stop: running jobs
            # finish, nothing new starts. Installed before the line below, so a signal after it is never lost.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.cancel)
            self.stdout.write("worker: running Herald's background jobs" + (" (once)" if once else ""))
            self.stdout.flush()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    @staticmethod
    def _finished() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT status, count(*) FROM procrastinate_jobs WHERE status IN ('succeeded', 'failed') GROUP BY 1"
            )
            counts = dict(cursor.fetchall())
        return {"succeeded": int(counts.get("succeeded", 0)), "failed": int(counts.get("failed", 0))}
