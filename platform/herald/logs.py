"""Structured logs: one JSON object a line, with the request's id, organisation and route, never a secret.

`request_logging` (herald.asgi) gives every HTTP request and WebSocket a context: its request id (the
client's `X-Request-ID` when it is a plain token, else a new one, echoed on the response), its route (the
URL pattern, never the query string, which can carry a publishable key) and, once a key resolved, its
organisation id (`log_organization`, called where keys resolve). `JsonFormatter` adds that context to every
record and `redact` scrubs anything shaped like a key, token, signing secret or bearer credential from the
message and the traceback: notification bodies are never logged in the first place.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("herald.request")

# Mutable on purpose: a key resolved in a worker thread (a copied context) still names the request's organisation.
_context: ContextVar[dict[str, Any] | None] = ContextVar("herald_log_context", default=None)

_SECRETS = re.compile(
    r"(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]+"  # API keys (and Stripe's)
    r"|whsec_[A-Za-z0-9+/=_-]+"  # Stripe webhook secrets
    r"|whsk_[A-Za-z0-9_-]+"  # subscriber signing secrets
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # JWTs
    r"|(?i:bearer)\s+[^\s\"',]+"  # any bearer credential
    r"|\b[0-9a-fA-F]{64}\b"  # subscriber hashes (HMAC-SHA256) and key hashes
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def redact(text: str) -> str:
    """`text` with every key, token and secret replaced by [redacted]."""
    return _SECRETS.sub("[redacted]", text)


def log_organization(organization_id: int) -> None:
    """Name the organisation of the current request in its log records (a no-op outside a request)."""
    context = _context.get()
    if context is not None:
        context["organization_id"] = organization_id


def _route(path: str) -> str:
    """The URL pattern of `path` (`v1/subscribers/<subscriber_id>`), so ids stay out of the logs."""
    from django.urls import Resolver404, resolve

    try:
        match = resolve(path)
    except Resolver404:
        return "unmatched"
    except Exception:  # noqa: BLE001 - a log line never fails a request
        return "unresolved"
    return "/" + str(match.route or match.view_name or "")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the request context, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        context = _context.get()
        if context is not None:
            if "route" not in context:
                context["route"] = _route(context.pop("path", "/"))
            entry.update({k: v for k, v in context.items() if k != "path"})
        for name in ("method", "status", "duration_ms"):
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The usual one-line text, with secrets redacted (development)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
# Probes and scrapes come every few seconds from every kubelet and Prometheus: not a line each.
UNLOGGED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _request_id(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            given = bytes(value).decode("latin-1")
            if _REQUEST_ID.match(given):
                return given
    return secrets.token_hex(8)


def request_logging(app: ASGIApp) -> ASGIApp:
    """Give each HTTP request / WebSocket a log context; log one line per HTTP request at INFO."""

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in UNLOGGED_PATHS:
            await app(scope, receive, send)
            return
        request_id = _request_id(scope)
        context: dict[str, Any] = {"request_id": request_id, "path": scope.get("path") or "/"}
        client = scope.get("client")
        if client:
            context["client"] = client[0]  # the proxy's X-Forwarded-For when it is trusted (FORWARDED_ALLOW_IPS)
        token = _context.set(context)
        if scope["type"] != "http":
            context["route"] = "/v1/ws" if context.pop("path") == "/v1/ws" else "unmatched"  # the one socket route
            try:
                await app(scope, receive, send)
            finally:
                _context.reset(token)
            return
        started = time.monotonic()
        status = 500
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "status": status,
                        "duration_ms": round((time.monotonic() - started) * 1000, 2),
                    },
                )
            _context.reset(token)

    return application
