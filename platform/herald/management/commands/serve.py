"""`herald serve`: the ASGI server with production defaults.

- workers from WEB_CONCURRENCY (default 1; one process per core is the usual choice);
- no access log (a line per request is the proxy's job; herald.logs logs requests at INFO);
- proxy headers (X-Forwarded-For/-Proto) trusted only from FORWARDED_ALLOW_IPS (default 127.0.0.1);
- on SIGTERM: stop accepting, close every WebSocket with 1012 (service restart: clients reconnect elsewhere
  and catch up by cursor), let HTTP requests in flight finish for up to HERALD_DRAIN_SECONDS, then exit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from herald.env import env_int, env_str


def serve_options() -> dict[str, Any]:
    """uvicorn's settings for production, read from the environment."""
    forwarded = env_str("FORWARDED_ALLOW_IPS") or "127.0.0.1"
    return {
        "workers": env_int("WEB_CONCURRENCY", 1, minimum=1, maximum=64),
        "forwarded_allow_ips": [ip.strip() for ip in forwarded.split(",") if ip.strip()],
        "timeout_graceful_shutdown": env_int("HERALD_DRAIN_SECONDS", 25, minimum=1, maximum=3600),
        "timeout_keep_alive": keep_alive_seconds(),
    }


def keep_alive_seconds() -> int:
    """How long an idle keep-alive connection stays open. uvicorn's 5 s equals the idle expiry of common client
    pools (httpx's 5 s): a request sent on a pooled connection as the server closes it gets no answer (the soak
    saw two ReadErrors on POST /v1/notifications). Longer than clients' and load balancers' idle timeouts
    (AWS ALB 60 s), the client closes first, and it knows not to reuse what it closed."""
    return env_int("HERALD_KEEP_ALIVE_SECONDS", 75, minimum=1, maximum=3600)


class Command(BaseCommand):
    help = "Serve Herald in production: uvicorn, WEB_CONCURRENCY workers, graceful drain on SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=env_str("HERALD_HOST") or "0.0.0.0")  # noqa: S104 - a server's job
        parser.add_argument("--port", type=int, default=env_int("PORT", 8000, minimum=1, maximum=65535))

    def handle(self, *args: Any, **options: Any) -> None:
        import uvicorn

        from herald.pooler import pooler_refusal

        refusal = pooler_refusal()
        if refusal:
            raise CommandError(refusal)
        settings = serve_options()
        if settings["workers"] > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Workers add their metrics up through files in one folder (herald.metrics), fresh for each start.
            folder = tempfile.mkdtemp(prefix="herald-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        else:
            folder = None
        try:
            uvicorn.run(
                "herald.asgi:application",
                host=options["host"],
                port=options["port"],
                ws="websockets-sansio",
                lifespan="off",
                access_log=False,
                proxy_headers=True,
                server_header=False,
                log_config=None,  # Django's LOGGING (herald.settings) formats uvicorn's records too
                **settings,
            )
        finally:
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
