"""The /v1 front: one ASGI layer before Django for every HTTP request under /v1/.

For each request it:

- answers a key the token bucket refused, until that key's next token, without Redis or Django (the
  429 encoded once per path; refusal memory in tenants.ratelimit); widget requests have their own
  refusal path (`_widget_refused_here`), with the CORS headers Django would add;
- for the server API (SECRET_PATH_PREFIXES): checks the key's shape, resolves it (the key cache with
  async Redis, the database on a miss) and takes a token from its bucket, on the event loop, so a
  refused request never waits for Django's one sync thread and never makes another organisation's
  requests wait there;
- hands the route ONE typed `FrontContext` (request id, resolved key, rate decision, origin, headers):
  ASGI routes (e.g. notifications.lean's POST /v1/notifications) get it as an argument, Django's
  operations read it with `front_context(request)` (herald.operations);
- for ASGI routes, also enforces the body limit (413), encodes problems as RFC 9457 documents with the
  rate-limit headers, and adds the security headers (Django's answers get them from herald.api_handler).

A key that does not resolve on a Django-served route goes on to Django, which answers it as always.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.utils import timezone

from herald.compat import cache_value_decode, tenant_cache_key
from herald.logs import log_organization
from herald.problems import PROBLEM_CONTENT_TYPE, Problem
from notifications.proofs import (
    SUBSCRIBER_HASH_HEADER,
    SUBSCRIBER_HEADER,
    SUBSCRIBER_TOKEN_HEADER,
    subscriber_header_decode,
    unverified_subject,
)
from tenants.keys import key_hash, key_kind
from tenants.origins import origin_allowed
from tenants.ratelimit import (
    RateDecision,
    Refusal,
    bad_proof_identity,
    publishable_identity,
    rate_limit_take_async,
    rate_limit_take_with_entry_async,
    refusal_active,
    refusal_pending,
    refusal_remember,
    unknown_key_identity,
    unknown_key_take,
)
from tenants.resolve import (
    PUBLISHABLE_KEY_HEADER,
    ResolvedKey,
    api_key_resolve,
    key_recently_unknown,
    secret_key_shape_check,
)

logger = logging.getLogger(__name__)

ASGIApp = Callable[..., Awaitable[None]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 256 * 1024
# On every /v1/ answer (Django's through herald.api_handler, the front's and its routes' here).
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}
CORS_ALLOW_HEADERS = ", ".join(
    [
        "Authorization",
        "Content-Type",
        "Idempotency-Key",
        PUBLISHABLE_KEY_HEADER,
        SUBSCRIBER_HEADER,
        SUBSCRIBER_HASH_HEADER,
        SUBSCRIBER_TOKEN_HEADER,
    ]
)
CORS_EXPOSE_HEADERS = "RateLimit, RateLimit-Policy, Retry-After, Idempotent-Replayed"
CORS_MAX_AGE = "600"

# The server API's routes (every secret-key operation of notifications.api; a test keeps them in step).
SECRET_PATH_PREFIXES = ("/v1/subscribers", "/v1/topics", "/v1/notifications", "/v1/messages/", "/v1/usage")
WIDGET_PATH_PREFIX = "/v1/inbox"  # the widget API: refused publishable keys answered here too
FRONT_SCOPE_KEY = "herald.front"  # where the FrontContext travels in the ASGI scope, for Django

# A 429 (the bucket's, or remembered until the key's next token), or a key this process found unknown moments
# ago: the answer waits about _REFUSED_DELAY seconds (0.1-0.3 s), so a client retrying in a loop slows itself
# down rather than the server (Retry-After is at least a second, so a client that honours it loses nothing).
# Waiting only until the key's next token (20 ms on Free) let 64 looping connections make ~3,000 answers/s and
# another organisation's p99 triple; unknown keys answered at once, ~5,500/s; a fixed 0.1 s kept the 64 in step
# (infra/bench/ingest.py's isolation phase).
_REFUSED_DELAY = 0.2


async def _refusal_wait() -> None:
    """Wait about _REFUSED_DELAY, spread over half to one and a half of it: a fixed wait kept looping clients
    in step, so their refusals reached the loop in bursts that other organisations' requests queued behind."""
    await asyncio.sleep(_REFUSED_DELAY * (0.5 + random.random()))  # noqa: S311 - spreading load, not a secret


@dataclass(frozen=True)
class FrontContext:
    """What the front found out about one /v1 request, for the route that answers it."""

    request_id: str
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    key: ResolvedKey | None = None  # the secret key, resolved and its token taken (server API only)
    rate: RateDecision | None = None  # that token's decision: its headers go on every answer
    touch: bool = False  # the key's last_used_at is due: whoever writes next writes it
    origin: str | None = None
    query_string: bytes = b""
    client: str = ""  # the client's address (widget routes: the bucket of its failed proofs)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class FrontAnswer:
    """A JSON answer of an ASGI route (the front adds the rate-limit and security headers)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[FrontContext, bytes], Awaitable[FrontAnswer]]


# --- encoding ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Encoded:
    """A whole HTTP answer as its two ASGI messages (the server does not change them, so one can be re-sent)."""

    start: dict[str, Any]
    body: dict[str, Any]

    async def send(self, send: Send) -> None:
        await send(self.start)
        await send(self.body)


def _encoded(
    status: int, body: Any, *, content_type: str = "application/json", extra: Mapping[str, str] | None = None
) -> _Encoded:
    payload = b"" if status == 204 else json.dumps(body).encode()  # 204: no content (RFC 9110)
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())]
    headers += [
        (name.lower().encode(), value.encode()) for name, value in {**SECURITY_HEADERS, **(extra or {})}.items()
    ]
    return _Encoded(
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": payload},
    )


def _problem_encoded(problem: Problem, decision: RateDecision | None, path: str) -> _Encoded:
    headers = {**(decision.headers() if decision else {}), **problem.headers}
    return _encoded(problem.status, problem.document(path), content_type=PROBLEM_CONTENT_TYPE, extra=headers)


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


async def _read_body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes | None:
    """The whole body, or None when it is over the limit."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _discard_body(receive: Any) -> None:
    """Read an unanswered request's body out of the way."""
    while (await receive()).get("more_body"):
        pass


# --- keys ------------------------------------------------------------------------------------


class SlowRefusal(Problem):
    """A refusal the front answers after _REFUSED_DELAY: an empty bucket, a key found unknown moments ago, an
    address that looked up too many keys (a client told so is told again no faster than that)."""


@dataclass
class _RedisHolder:
    client: Any = None

    def get(self) -> Any:
        if self.client is None:
            from herald.redis_clients import redis_async

            self.client = redis_async(socket_timeout=1.0)
        return self.client


_redis = _RedisHolder()


def _secret_token(authorization: str | None) -> str:
    """The secret key an Authorization header carries, its shape checked (no lookup)."""
    if not authorization:
        raise Problem("authentication-required")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem("authentication-required", "Authorization must be `Bearer <key>`")
    secret_key_shape_check(token)
    return token


async def secret_key_resolve(authorization: str | None, client: str | None = None) -> ResolvedKey:
    """tenants.resolve.request_secret_key for the event loop: the key cache read with async Redis (`client`, the
    caller's address: its unknown keys are limited)."""
    token = _secret_token(authorization)
    if key_kind(token) is not None and key_recently_unknown(key_hash(token)):
        raise SlowRefusal("invalid-api-key")
    resolved = await api_key_resolve_async(token, client)
    if resolved is None or resolved.kind != "secret":
        raise Problem("invalid-api-key")
    return resolved


async def api_key_resolve_async(token: str, client: str | None = None) -> ResolvedKey | None:
    """tenants.resolve.api_key_resolve for the event loop: the key cache read with async Redis, the database (in
    a worker thread, never the shared database_sync_to_async one) only on a miss; None when not live."""
    if key_kind(token) is None:
        return None  # malformed or a bad checksum: no lookup
    hashed = key_hash(token)
    if key_recently_unknown(hashed):
        return None  # no query, no thread: refused requests never queue ahead of others
    resolved: ResolvedKey | None = None
    no_entry = False  # the shared cache answered and holds nothing for this key (not even a recent change)
    try:
        # The entry api_key_resolve caches, in the public schema.
        raw = await _redis.get().get(tenant_cache_key(f"apikey:{hashed}", schema_name="public"))
        no_entry = raw is None
        if raw is not None:
            cached = cache_value_decode(raw)
            if isinstance(cached, ResolvedKey):
                resolved = cached
    except Exception:  # noqa: BLE001 - fall back to the sync path, which reads the database
        logger.warning("key cache unavailable")  # no traceback: one a request while Redis is away
    if resolved is None:
        # A key this process served before is looked up without spending its address's budget of unknown keys:
        # its entry leaves the shared cache each minute, and another client at the same address (a shared NAT;
        # the isolation bench's flood of made-up keys) had emptied it, so the key was answered 429. Made-up keys
        # are never in _key_buckets, and a key found gone leaves it.
        if client is not None and no_entry and hashed not in _key_buckets:
            _lookup_allowed(client)
        resolved = await sync_to_async(_resolve_and_release, thread_sensitive=False)(token)
        if resolved is None:
            _key_buckets.pop(hashed, None)
            return None
    return _live(resolved, hashed)


def _live(resolved: ResolvedKey, hashed: str) -> ResolvedKey | None:
    """`resolved` if it is the key of this hash and has not expired."""
    if not hmac.compare_digest(resolved.key_hash, hashed):
        return None
    if resolved.expires_at is not None and resolved.expires_at <= timezone.now():
        return None
    log_organization(resolved.organization_id)
    return resolved


def _lookup_allowed(client: str) -> None:
    """Take a token from `client`'s bucket of key lookups in the database, or raise 429: a flood of made-up keys,
    each with a valid checksum, would otherwise cost a query each. Keys in the shared cache never get here (a
    live key is cached there for a minute after its first lookup), nor do keys revoked or rolled in the last
    minute (their entry marks the change, and each of their requests reads the database meanwhile), nor does
    anything while Redis is away."""
    identity = unknown_key_identity(client)
    refusal = refusal_active(identity)
    decision = refusal.decision if refusal is not None else unknown_key_take(client)
    if not decision.allowed:
        refusal_remember(identity, decision)
        raise SlowRefusal("rate-limited", "Too many unknown keys from this address", headers=decision.headers())


def _resolve_and_release(token: str) -> ResolvedKey | None:
    """api_key_resolve in a worker thread, its connection handed back to the pool afterwards."""
    from django.db import connection

    try:
        return api_key_resolve(token)
    finally:
        connection.close()


def _client(scope: dict[str, Any]) -> str:
    client = scope.get("client") or ("", 0)
    return str(client[0])


# Secret keys this process resolved: their bucket (a key's id never changes) and the plan last seen. For these the
# token is taken and the key cache's entry read in ONE Redis round trip; the entry is still what decides whether
# the key is live, exactly as api_key_resolve_async reads it.
_key_buckets: dict[str, tuple[int, str]] = {}
_KEY_BUCKETS_MAX = 10_000


async def _key_and_token(authorization: str | None, client: str) -> tuple[ResolvedKey, RateDecision, bool]:
    """The secret key and a token from its bucket (and whether to touch last_used_at); a Problem when either is
    refused (a refused key remembered until its next token)."""
    token = _secret_token(authorization)
    hashed = key_hash(token)
    taken: tuple[int, str, RateDecision, bool] | None = None
    known = _key_buckets.get(hashed)
    if known is not None and not key_recently_unknown(hashed):
        entry = tenant_cache_key(f"apikey:{hashed}", schema_name="public")
        found = await rate_limit_take_with_entry_async(api_key_id=known[0], plan=known[1], entry=entry)
        if found is not None:
            decision, touch, raw = found
            taken = (known[0], known[1], decision, touch)
            cached = cache_value_decode(raw) if raw is not None else None
            if (
                isinstance(cached, ResolvedKey)
                and cached.kind == "secret"
                and (cached.api_key_id, cached.plan) == known
            ):
                live = _live(cached, hashed)
                if live is None:
                    raise Problem("invalid-api-key")
                return _granted(authorization, live, decision, touch)
    # First seen here, or its cache entry missing, changed or of another plan: resolve it as api_key_resolve_async
    # does, and take its token unless the one taken above was from this key's bucket at this plan.
    key = await secret_key_resolve(authorization, client)
    if len(_key_buckets) >= _KEY_BUCKETS_MAX:
        _key_buckets.clear()
    _key_buckets[hashed] = (key.api_key_id, key.plan)
    if taken is not None and taken[:2] == (key.api_key_id, key.plan):
        return _granted(authorization, key, taken[2], taken[3])
    decision, touch = await rate_limit_take_async(api_key_id=key.api_key_id, plan=key.plan)
    return _granted(authorization, key, decision, touch)


def _granted(
    authorization: str | None, key: ResolvedKey, decision: RateDecision, touch: bool
) -> tuple[ResolvedKey, RateDecision, bool]:
    if not decision.allowed:
        refusal_remember(authorization, decision)
        raise SlowRefusal("rate-limited", headers=decision.headers())
    return key, decision, touch


# --- refusals remembered ------------------------------------------------------------------------


async def _refuse(receive: Any, send: Send, answer: _Encoded) -> None:
    await _discard_body(receive)
    await _refusal_wait()
    await answer.send(send)


async def _refused_here(scope: dict[str, Any], receive: Any, send: Send, identity: str) -> bool:
    """Answer a server-API request whose key the bucket refused and has no token yet: True when answered."""
    refusal = refusal_active(identity)
    if refusal is None:
        return False
    path = str(scope["path"])
    answer = refusal.answers.get(path)
    if answer is None:
        decision = refusal.decision
        answer = refusal.answers[path] = _problem_encoded(
            Problem("rate-limited", headers=decision.headers()), decision, path
        )
    await _refuse(receive, send, answer)
    return True


def _widget_key(scope: dict[str, Any], headers: dict[str, str]) -> str | None:
    """The publishable key a widget request names, as tenants.resolve.request_publishable_key reads it."""
    candidates = [
        headers.get(PUBLISHABLE_KEY_HEADER.lower()),
        *parse_qs(scope["query_string"].decode("latin-1")).get("pk", []),
    ]
    scheme, _, token = (headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip().startswith(("pk_", "sk_")):
        candidates.append(token.strip())
    keys = {c.strip() for c in candidates if c and c.strip()}
    return keys.pop() if len(keys) == 1 else None


def _widget_refusal(scope: dict[str, Any], headers: dict[str, str], hashed: str) -> Refusal | None:
    """The refusal standing for a widget request: its client address's failed proofs on this key, or the bucket
    of the subscriber it names (unverified here: naming a subscriber whose bucket is empty only gets a 429)."""
    client = scope.get("client") or ("", 0)
    found = refusal_active(bad_proof_identity(hashed, str(client[0])))
    if found is not None:
        return found
    subscriber_id = subscriber_header_decode(headers.get("x-herald-subscriber"))
    token = headers.get("x-herald-subscriber-token")
    scheme, _, bearer = (headers.get("authorization") or "").strip().partition(" ")
    if not token and scheme.lower() == "bearer" and not bearer.strip().startswith(("pk_", "sk_")):
        token = bearer.strip()
    if not subscriber_id and token:
        subscriber_id = unverified_subject(token)
    if subscriber_id:
        return refusal_active(publishable_identity(hashed, subscriber_id))
    return None


async def _widget_key_unknown_here(scope: dict[str, Any], receive: Any, send: Send) -> bool:
    """Answer a widget request whose publishable key this process found unknown moments ago (as Django would:
    401 invalid-api-key, no CORS grant); True when answered."""
    key = _widget_key(scope, _headers(scope))
    if not key or not key.startswith("pk_") or not key_recently_unknown(key_hash(key)):
        return False
    answer = _problem_encoded(Problem("invalid-api-key", headers={"Vary": "Origin"}), None, str(scope["path"]))
    await _refuse(receive, send, answer)
    return True


async def _widget_refused_here(scope: dict[str, Any], receive: Any, send: Send) -> bool:
    """Answer a widget request whose publishable key the bucket refused and has no token yet, with the CORS
    headers Django would add; True when answered. From an origin the key does not allow: Django answers."""
    headers = _headers(scope)
    key = _widget_key(scope, headers)
    refusal = _widget_refusal(scope, headers, key_hash(key)) if key else None
    if refusal is None:
        return False
    origin = headers.get("origin")
    if origin and not origin_allowed(origin, list(refusal.origins)):
        return False
    path = str(scope["path"])
    answer = refusal.answers.get(f"{path} {origin}")
    if answer is None:
        decision = refusal.decision
        cors = {"Vary": "Origin"}
        if origin:
            cors.update({"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS})
        problem = Problem("rate-limited", headers={**decision.headers(), **cors})
        answer = refusal.answers[f"{path} {origin}"] = _problem_encoded(problem, decision, path)
    await _refuse(receive, send, answer)
    return True


# --- the layer -------------------------------------------------------------------------------------


def _context(scope: dict[str, Any], headers: dict[str, str], **found: Any) -> FrontContext:
    return FrontContext(
        request_id=headers.get("x-request-id") or uuid.uuid4().hex,
        method=str(scope["method"]),
        path=str(scope["path"]),
        headers=headers,
        origin=headers.get("origin"),
        query_string=scope.get("query_string") or b"",
        client=str((scope.get("client") or ("",))[0] or ""),
        **found,
    )


async def _serve_route(
    route: Route, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str], *, secret: bool = True
) -> None:
    """An ASGI route: body limit, key and token (a widget route, `secret=False`, authenticates its request itself
    and puts its headers on its answers and problems), the route, its answer or problem encoded."""
    path = str(scope["path"])
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        await _problem_encoded(Problem("payload-too-large"), None, path).send(send)
        return
    body = await _read_body(receive)
    if body is None:
        await _problem_encoded(Problem("payload-too-large"), None, path).send(send)
        return
    decision: RateDecision | None = None
    try:
        if secret:
            key, decision, touch = await _key_and_token(headers.get("authorization"), _client(scope))
            answer = await route(_context(scope, headers, key=key, rate=decision, touch=touch), body)
        else:
            answer = await route(_context(scope, headers), body)
    except Problem as problem:
        if isinstance(problem, SlowRefusal):
            await _refusal_wait()
        await _problem_encoded(problem, decision, path).send(send)
        return
    except Exception:
        logger.exception("unhandled error in %s %s", scope["method"], path)
        await _problem_encoded(Problem("internal-error"), decision, path).send(send)
        return
    extra = {**(decision.headers() if decision else {}), **answer.headers}
    await _encoded(answer.status, answer.body, extra=extra).send(send)


async def _django_context(scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str]) -> bool:
    """Resolve the key and take its token for a Django-served server-API request, into the scope's context;
    True when refused (and answered) here. A key that does not resolve goes on to Django, which answers it."""
    try:
        key, decision, touch = await _key_and_token(headers.get("authorization"), _client(scope))
    except Problem as problem:
        if problem.problem_type.slug not in FRONT_REFUSALS:
            return False
        answer = _problem_encoded(problem, None, str(scope["path"]))
        if isinstance(problem, SlowRefusal):
            await _refuse(receive, send, answer)
        else:
            await _discard_body(receive)
            await answer.send(send)
        return True
    except Exception:  # noqa: BLE001 - Django resolves it again and answers whatever went wrong
        logger.warning("key resolution at the front failed", exc_info=True)
        return False
    scope[FRONT_SCOPE_KEY] = _context(scope, headers, key=key, rate=decision, touch=touch)
    return False


# Refusals the front answers itself, with no Django and no thread: an empty bucket, a missing, malformed or
# unknown key (Django would answer the same problem document).
FRONT_REFUSALS = frozenset(
    {"rate-limited", "invalid-api-key", "authentication-required", "publishable-key-not-allowed"}
)


def front(
    django: ASGIApp, api: ASGIApp | None = None, routes: Mapping[tuple[str, str], Route] | None = None
) -> ASGIApp:
    """The HTTP application: /v1/ through the front to `routes` ((method, path) -> ASGI route) or `api`
    (Django for /v1/, herald.api_handler); everything else straight to `django`."""
    api = api or django
    routes = routes if routes is not None else {}  # a Mapping: notifications.lean.RouteTable also matches patterns

    async def application(scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await django(scope, receive, send)
            return
        scope = dict(scope)  # ours to add to: Django reads the FrontContext from it
        headers = _headers(scope)
        try:
            if scope["method"] == "OPTIONS":
                pass
            elif scope["path"].startswith(WIDGET_PATH_PREFIX):
                if refusal_pending() and await _widget_refused_here(scope, receive, send):
                    return
                if await _widget_key_unknown_here(scope, receive, send):
                    return
                route = routes.get((scope["method"], scope["path"]))
                if route is not None:
                    await _serve_route(route, scope, receive, send, headers, secret=False)
                    return
            elif scope["path"].startswith(SECRET_PATH_PREFIXES):
                authorization = headers.get("authorization")
                if authorization and refusal_pending() and await _refused_here(scope, receive, send, authorization):
                    return
                route = routes.get((scope["method"], scope["path"]))
                if route is not None:
                    await _serve_route(route, scope, receive, send, headers)
                    return
                if await _django_context(scope, receive, send, headers):
                    return
            scope.setdefault(FRONT_SCOPE_KEY, _context(scope, headers))
        except ConnectionResetError:
            return
        await api(scope, receive, send)

    return application
