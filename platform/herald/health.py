"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from herald.metrics import metrics_text
from herald.redis_clients import redis_async

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
    client = redis_async(socket_timeout=PROBE_TIMEOUT)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def readiness() -> tuple[int, dict[str, object]]:
    """Database and Redis both answer: (200, body), else (503, body naming what does not)."""

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
    return (503 if down else 200), body


async def readyz(request: HttpRequest) -> JsonResponse:
    """Database and Redis both answer; 503 naming what does not."""
    status, body = await readiness()
    return JsonResponse(body, status=status)


_PROBES = ("/healthz", "/readyz", "/metrics")


def probes_first(app: Any) -> Any:
    """Answer GET /healthz, /readyz and /metrics on the event loop, before Django and whatever the Host header.

    Kubelets, Docker's HEALTHCHECK and Prometheus call a pod by its IP, which no ALLOWED_HOSTS lists; and a
    liveness probe should not queue behind Django. Everything else goes on to `app`.
    """

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in _PROBES or scope["method"] not in ("GET", "HEAD"):
            await app(scope, receive, send)
            return
        content_type = "application/json"
        if scope["path"] == "/healthz":
            status, payload = 200, json.dumps({"status": "ok"}).encode()
        elif scope["path"] == "/readyz":
            status, body = await readiness()
            payload = json.dumps(body).encode()
        else:
            status = 200
            payload, content_type = await asyncio.to_thread(metrics_text)
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(payload)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload if scope["method"] == "GET" else b""})

    return application
