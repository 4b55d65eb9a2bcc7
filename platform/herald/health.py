"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

import psycopg
import redis.asyncio as aioredis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from herald.metrics import metrics_text

PROBE_TIMEOUT = 2.0


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of herald.metrics (every worker's, with several)."""
    body, content_type = await asyncio.to_thread(metrics_text)
    return HttpResponse(body, content_type=content_type)


async def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving."""
    return JsonResponse({"status": "ok"})


async def _database_ok() -> None:
    db = {key: str(value) for key, value in settings.DATABASES["default"].items() if isinstance(value, (str, int))}
    conn = await psycopg.AsyncConnection.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        connect_timeout=int(PROBE_TIMEOUT),
        autocommit=True,
    )
    async with conn:
        await conn.execute("SELECT 1")


async def _redis_ok() -> None:
    client = aioredis.from_url(settings.REDIS_URL, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def readyz(request: HttpRequest) -> JsonResponse:
    """Database and Redis both answer; 503 naming what does not."""

    async def check(name: str, probe: object) -> tuple[str, str]:
        try:
            await asyncio.wait_for(probe, PROBE_TIMEOUT + 1)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - any failure means "down"
            return name, f"down: {type(exc).__name__}"
        return name, "ok"

    results = dict(await asyncio.gather(check("database", _database_ok()), check("redis", _redis_ok())))
    down = [name for name, state in results.items() if state != "ok"]
    body: dict[str, object] = {"status": "ok" if not down else "unavailable", "checks": results}
    if down:
        body["down"] = down
    return JsonResponse(body, status=503 if down else 200)
