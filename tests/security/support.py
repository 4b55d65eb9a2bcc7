"""Helpers of the security tests: widget calls and sockets against a real Herald process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ALLOWED_ORIGIN, Org
from tests.servers import HeraldServer

PROBLEM = "https://herald.dev/problems/"


def widget_get(server: HeraldServer, org: Org, path: str = "/v1/inbox/unread-count", **headers: str) -> httpx.Response:
    """A widget GET with the organisation's publishable key and Origin, plus `headers` (the proof)."""
    base = {"X-Herald-Publishable-Key": org.publishable_key, "Origin": ALLOWED_ORIGIN}
    return httpx.get(server.url + path, headers={**base, **headers}, timeout=10)


def problem_of(response: httpx.Response) -> str:
    """The problem slug of a response, asserting that it is a problem document with the right status."""
    assert response.headers.get("content-type") == "application/problem+json", (
        response.status_code,
        response.text[:300],
    )
    body = json.loads(response.content)
    assert body["status"] == response.status_code
    return str(body["type"]).removeprefix(PROBLEM)


def server_log_tracebacks(server: HeraldServer) -> int:
    """How many tracebacks the server process has logged so far."""
    return Path(server.log.name).read_text(errors="replace").count("Traceback (most recent call last)")


def token_headers(token: str) -> dict[str, Any]:
    return {"X-Herald-Subscriber-Token": token}
