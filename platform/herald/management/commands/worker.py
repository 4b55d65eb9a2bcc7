"""`herald worker`: Herald's background work until SIGTERM.

Today that is the periodic upkeep: purge idempotency records past their retention and keep the spare-schema
pool full. Billing's Procrastinate jobs (usage reporting, Stripe sync) will run here when billing lands; until
then there is no queue to consume, so this loop is the whole worker.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from herald.env import env_int


class Command(BaseCommand):
    help = "Run Herald's background work (idempotency purge, spare schemas) until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one round, then exit")
        parser.add_argument(
            "--every", type=int, default=env_int("HERALD_WORKER_EVERY", 3600, minimum=1), help="seconds between rounds"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from tenants.provisioning import spare_pool_fill

        stop = threading.Event()
        if not options["once"]:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda signum, frame: stop.set())
        while True:
            call_command("purge_idempotency", stdout=self.stdout)
            made = spare_pool_fill()
            self.stdout.write(f"spare schemas made: {made}")
            self.stdout.flush()
            if options["once"] or stop.wait(options["every"]):
                return
