"""WebSocket routes and the middleware that names the organisation of a socket.

`/v1/ws?pk=<publishable key>`: the key resolves the organisation (through
tenants.resolve, the one place requests find their tenant) and the `Origin`
header must be on the key's allow-list. Anything else is refused before the
socket is accepted: the HTTP handshake answers 403 with a problem document
saying why, and no socket exists. A client that sends no `Origin` is not a
browser and has no origin to check; its subscriber proof still is. The
consumer gets the organisation explicitly in `scope["organization"]`; no
tenant is ever activated on the shared connection for it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs

from herald import metrics
from herald.front import api_key_resolve_async
from herald.problems import PROBLEM_CONTENT_TYPE, Problem
from notifications.consumers import CLIENT, PENDING, InboxConsumer
from notifications.socket_limits import socket_limits
from tenants.keys import key_hash
from tenants.models import Organization
from tenants.origins import origin_allowed
from tenants.resolve import ResolvedKey, key_recently_unknown


async def refuse_handshake(scope: Any, receive: Any, send: Any, problem: Problem | None = None) -> None:
    """Answer the handshake with 403 and a problem document saying why (browsers cannot read it; others can)."""
    await receive()  # websocket.connect
    problem = problem or Problem("not-found", "No WebSocket endpoint here: connect to /v1/ws?pk=<publishable key>")
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 4403})  # a server without the extension: a bare 403
        return
    # Every refusal is 403 on the handshake (the document's `type` says which); `status` agrees with it.
    body = json.dumps({**problem.document(str(scope.get("path", ""))), "status": 403}).encode()
    headers = [(b"content-type", PROBLEM_CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


def handshake_problem(key: str, resolved: ResolvedKey | None, origin: str | None) -> Problem | None:
    """Why a handshake with `?pk=key` from `origin` is refused, or None when it may proceed."""
    if not key:
        return Problem("authentication-required", "Give the publishable key in the URL: /v1/ws?pk=pk_live_...")
    if key.startswith("sk_live_"):
        return Problem(
            "secret-key-not-allowed", "Sockets open with a publishable key (pk_live_...); never ship a secret key"
        )
    if resolved is None or resolved.kind != "publishable":
        return Problem("invalid-api-key", "The publishable key in ?pk= is malformed, unknown, revoked or expired")
    if origin is None:
        return None  # not a browser: no Origin to check (the subscriber proof still is)
    if not origin_allowed(origin, list(resolved.allowed_origins)):
        return Problem(
            "origin-not-allowed",
            f"Origin {origin[:200]!r} is not on this publishable key's allowed origins; add it to the key "
            "(herald create_key ... --origin) or connect from an allowed origin",
        )
    return None


async def close_over_limit(receive: Any, send: Any) -> None:
    """Accept, then close with 4429: the client learns it is a limit (a refused handshake says only 403)."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 4429})


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class PublishableKeyMiddleware:
    """Resolve `?pk=` to an organisation and check `Origin` against the key's allow-list, before accept."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        client = str((scope.get("client") or ("",))[0])
        if not socket_limits.connect_allowed(client):
            await close_over_limit(receive, send)
            return
        inner = await self._scope_for(scope)
        if isinstance(inner, Problem):
            await refuse_handshake(scope, receive, send, inner)
            return
        api_key_id = int(inner["api_key_id"])
        if not socket_limits.key_enter(api_key_id, client):
            await close_over_limit(receive, send)
            return
        inner[CLIENT], inner[PENDING] = client, True  # the consumer clears PENDING (and counts it off) on auth
        try:
            # Only `inner` stays referenced by this frame for the socket's life, not the key lookup's leftovers.
            with metrics.socket_open(inner["organization"].plan):
                await self.app(inner, receive, send)
        finally:
            socket_limits.key_leave(api_key_id)
            if inner.get(PENDING):
                socket_limits.pending_leave(api_key_id, client)

    async def _scope_for(self, scope: Any) -> dict[str, Any] | Problem:
        """The consumer's scope with its organisation, or the Problem that refuses the handshake."""
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        keys = query.get("pk", [])
        key = keys[0] if len(keys) == 1 else ""
        if key and key_recently_unknown(key_hash(key)):
            # no thread hop for a key this process found unknown moments ago
            return Problem("invalid-api-key", "The publishable key in ?pk= is malformed, unknown, revoked or expired")
        # On the event loop (async Redis; a miss reads the database in a worker thread), not the shared thread.
        resolved = await api_key_resolve_async(key) if key else None
        problem = handshake_problem(key, resolved, _header(scope, b"origin"))
        if problem is not None or resolved is None:
            return problem or Problem("invalid-api-key")
        return {
            **scope,
            "organization": _organization(resolved),
            "publishable_key": key,
            "api_key_id": resolved.api_key_id,
            "api_key_expires_at": resolved.expires_at.timestamp() if resolved.expires_at is not None else None,
        }


_organizations: dict[tuple[int, str, str], Organization] = {}


def _organization(resolved: ResolvedKey) -> Organization:
    """One shared (unsaved, read-only) Organization per tenant for all its sockets: it names the schema and the
    plan (keyed by the plan too, so a plan change reaches new sockets once the key resolves again)."""
    key = (resolved.organization_id, resolved.schema_name, resolved.plan)
    found = _organizations.get(key)
    if found is None:
        found = _organizations[key] = resolved.organization()
    return found


inbox_socket = PublishableKeyMiddleware(InboxConsumer.as_asgi())


def websocket_application(scope: Any, receive: Any, send: Any) -> Awaitable[None]:
    """Route WebSocket connections: `/v1/ws` to the inbox consumer, anything else refused with 403.

    A plain function returning the app's coroutine rather than Channels'
    URLRouter: no router frame and no copy of the scope stays alive for each
    socket's lifetime, and there is one route.
    """
    if scope.get("path") == "/v1/ws":
        return inbox_socket(scope, receive, send)
    return refuse_handshake(scope, receive, send)
