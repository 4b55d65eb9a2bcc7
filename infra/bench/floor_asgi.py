"""The bare ASGI floor of infra/bench/ingest.py: uvicorn answering every request with a small JSON body, no
framework, no database. What an HTTP request costs here before Herald does anything."""

from __future__ import annotations

from typing import Any

BODY = b'{"ok":true}'
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())],
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send(START)
    await send({"type": "http.response.body", "body": BODY})
