"""The /v1 HTTP API: one NinjaAPI, the request pipeline every operation runs through, errors as problems.

Each operation is wrapped (`secret_operation` / `widget_operation`) by a
pipeline that, before django-ninja parses anything:

1. refuses bodies over 256 KiB (413) and bodies that are not clean JSON (400);
2. resolves the key (tenants.resolve), checks the Origin for widget calls,
   takes a rate-limit token (429 with Retry-After / RateLimit headers);
3. activates the organisation's schema on this thread's connection, and
   always returns the connection to the public schema afterwards;
4. for widget calls, verifies the subscriber proof;
5. for POSTs with an `Idempotency-Key`, runs the operation inside one
   transaction that first claims the key (concurrent duplicates wait on the
   claim, then get the stored response).

django-ninja's own `auth` objects only read what the pipeline found: they
exist so the OpenAPI document describes the security schemes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import connection, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security.base import AuthBase

from herald.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, Problem, problem_response, problem_types_markdown
from tenants.models import ApiKey
from tenants.ratelimit import (
    RateDecision,
    bad_proof_identity,
    bad_proof_take,
    publishable_identity,
    rate_limit_take,
    refusal_remember,
)
from tenants.resolve import (
    PUBLISHABLE_KEY_HEADER,
    SUBSCRIBER_HASH_HEADER,
    SUBSCRIBER_HEADER,
    SUBSCRIBER_TOKEN_HEADER,
    ResolvedKey,
    origin_allowed_by_any_key,
    origin_check,
    request_publishable_key,
    request_secret_key,
    request_subscriber_proof,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
IDEMPOTENCY_HEADER = "Idempotency-Key"
CORS_ALLOW_HEADERS = ", ".join(
    [
        "Authorization",
        "Content-Type",
        IDEMPOTENCY_HEADER,
        PUBLISHABLE_KEY_HEADER,
        SUBSCRIBER_HEADER,
        SUBSCRIBER_HASH_HEADER,
        SUBSCRIBER_TOKEN_HEADER,
    ]
)
CORS_EXPOSE_HEADERS = "RateLimit, RateLimit-Policy, Retry-After, Idempotent-Replayed"
CORS_MAX_AGE = "600"


# --- JSON bodies -----------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_parse(body: bytes) -> Any:
    """Parse a request body; Problem(invalid-json) for anything PostgreSQL could not store."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_constant=_refuse_constant)
        # Lone surrogates and NUL cannot be stored in PostgreSQL text or jsonb.
        # allow_nan=False: 1e400 parses as infinity, which PostgreSQL's json refuses.
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise Problem("invalid-json", f"The request body is not valid JSON: {type(exc).__name__}") from None
    if "\\u0000" in text or "\x00" in text:
        raise Problem("invalid-json", "JSON strings must not contain NUL (\\u0000)")
    return data


def json_body(request: HttpRequest) -> Any:
    """The request's JSON, parsed once."""
    cached = getattr(request, "_herald_json", None)
    if cached is not None:
        return cached[0]
    data = json_parse(request.body)
    request._herald_json = (data,)  # type: ignore[attr-defined]
    return data


class HeraldParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        return json_body(request)


def _body_check(request: HttpRequest) -> None:
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES or len(request.body) > MAX_BODY_BYTES:
        raise Problem("payload-too-large")


# --- the pipeline --------------------------------------------------------------------


def _with_rate_headers(response: HttpResponseBase, decision: RateDecision | None) -> HttpResponseBase:
    if decision is not None:
        for name, value in decision.headers().items():
            response[name] = value
    return response


def _with_cors(response: HttpResponseBase, origin: str | None) -> HttpResponseBase:
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    response["Vary"] = "Origin"
    return response


def _rate_limit(request: HttpRequest, key: ResolvedKey, subscriber_id: str | None = None) -> RateDecision:
    """Take a token (a widget request: from its subscriber's bucket); refused: 429, and the server's front
    answers the same key's (subscriber's) next requests itself until its next token (notifications.ingest)."""
    decision = rate_limit_take(api_key_id=key.api_key_id, plan=key.plan, subject=subscriber_id)
    request.herald_rate = decision  # type: ignore[attr-defined]
    if not decision.allowed:
        if key.kind == "secret":
            refusal_remember(request.headers.get("Authorization"), decision)
        else:
            refusal_remember(publishable_identity(key.key_hash, subscriber_id), decision, key.allowed_origins)
        raise Problem("rate-limited", headers=decision.headers())
    return decision


def _proven_subscriber(request: HttpRequest, key: ResolvedKey, bearer_token: str | None) -> str:
    """The subscriber a widget request proved. A refused proof spends a token of the client address's
    bad-proof bucket, never the organisation's; with that bucket empty, 429 (and the front answers)."""
    try:
        return request_subscriber_proof(request, key, bearer_token)
    except Problem:
        identity = bad_proof_identity(key.key_hash, str(request.META.get("REMOTE_ADDR") or ""))
        decision = bad_proof_take(identity)
        if not decision.allowed:
            refusal_remember(identity, decision, key.allowed_origins)
            raise Problem("rate-limited", headers=decision.headers()) from None
        raise


def _front_decision(request: HttpRequest) -> tuple[ResolvedKey | None, RateDecision | None]:
    """The key and token the server's front took for this request (notifications.ingest.lean_http), if it did."""
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return None, None
    key, rate = scope.get("herald.secret_key"), scope.get("herald.rate")
    if not isinstance(key, ResolvedKey) or not isinstance(rate, tuple):
        return None, None
    decision, touch = rate
    request.herald_rate = decision  # type: ignore[attr-defined]
    if touch:
        ApiKey.objects.filter(pk=key.api_key_id).update(last_used_at=timezone.now())
    return key, decision


def _run_in_tenant(request: HttpRequest, key: ResolvedKey, run: Callable[[], HttpResponseBase]) -> HttpResponseBase:
    connection.set_tenant(key.organization())  # type: ignore[attr-defined]
    try:
        return run()
    finally:
        connection.set_schema_to_public()  # type: ignore[attr-defined]


def secret_operation(*, idempotent: bool = False) -> Callable[..., Any]:
    """Wrap a server-API operation: secret key, rate limit, tenant schema, optional idempotency."""

    def decorate(run: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @wraps(run)
        def operation(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            decision = None
            try:
                _body_check(request)
                key, decision = _front_decision(request)
                if key is None or decision is None:
                    key = request_secret_key(request)
                    decision = _rate_limit(request, key)
                request.herald_key = key  # type: ignore[attr-defined]

                def call() -> HttpResponseBase:
                    if idempotent and request.method == "POST" and request.headers.get(IDEMPOTENCY_HEADER) is not None:
                        return idempotent_call(request, lambda: run(request, *args, **kwargs))
                    return run(request, *args, **kwargs)

                response = _run_in_tenant(request, key, call)
            except Problem as problem:
                response = problem.response(request.path)
            return _with_rate_headers(response, decision)

        return operation

    return decorate


def widget_operation(run: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Wrap a widget operation: publishable key, Origin allow-list, subscriber proof, rate limit, tenant schema."""

    @wraps(run)
    def operation(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        decision = None
        origin = None
        try:
            _body_check(request)
            key, bearer_token = request_publishable_key(request)
            origin = origin_check(request, key)
            subscriber_id = _proven_subscriber(request, key, bearer_token)
            decision = _rate_limit(request, key, subscriber_id)
            request.herald_subscriber_id = subscriber_id  # type: ignore[attr-defined]
            request.herald_key = key  # type: ignore[attr-defined]
            response = _run_in_tenant(request, key, lambda: run(request, *args, **kwargs))
        except Problem as problem:
            response = problem.response(request.path)
        return _with_cors(_with_rate_headers(response, decision), origin)

    return operation


def widget_preflight(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """CORS preflight of a widget route: allowed only for an origin on a publishable key's list."""
    origin = request.headers.get("Origin")
    pk = request.GET.get("pk")
    allowed = False
    if origin:
        if pk:
            try:
                key, _ = request_publishable_key(request)
                allowed = origin_check(request, key) is not None
            except Problem:
                allowed = False
        else:
            allowed = origin_allowed_by_any_key(origin)
    if not allowed:
        response = problem_response("origin-not-allowed", instance=request.path)
        response["Vary"] = "Origin"
        return response
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Origin"] = str(origin)
    response["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
    response["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
    response["Access-Control-Max-Age"] = CORS_MAX_AGE
    response["Vary"] = "Origin"
    return response


# --- idempotency ------------------------------------------------------------------------


def request_fingerprint(data: Any) -> str:
    """SHA-256 of a request body in canonical JSON: the same body in another key order is the same request."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def idempotency_key_valid(value: str) -> bool:
    return 0 < len(value) <= 255 and all(" " <= ch <= "~" for ch in value)


def idempotent_call(request: HttpRequest, run: Callable[[], HttpResponseBase]) -> HttpResponseBase:
    """Run a POST once per Idempotency-Key: a repeat gets the stored first response, another body a 422."""
    from notifications.services import idempotency_claim, idempotency_store

    key = request.headers.get(IDEMPOTENCY_HEADER, "")
    if not idempotency_key_valid(key):
        raise Problem("invalid-idempotency-key")
    endpoint = request.path if len(request.path) <= 100 else hashlib.sha256(request.path.encode()).hexdigest()
    fingerprint = request_fingerprint(json_body(request) if request.body else None)
    with transaction.atomic():
        stored = idempotency_claim(endpoint=endpoint, key=key, request_hash=fingerprint)
        if stored is not None:
            status, body = stored
            replay = HttpResponse(json.dumps(body), status=status, content_type="application/json")
            replay["Idempotent-Replayed"] = "true"
            return replay
        response = run()
        if 200 <= response.status_code < 300 and isinstance(response, HttpResponse):
            idempotency_store(
                endpoint=endpoint, key=key, status_code=response.status_code, response=json.loads(response.content)
            )
        else:
            # Nothing was done: drop the claim so a corrected retry may use the key.
            transaction.set_rollback(True)
        return response


# --- OpenAPI security schemes (the pipeline above does the work) ------------------------------


class SecretKey(AuthBase):
    openapi_type = "http"
    openapi_scheme = "bearer"
    openapi_bearerFormat = "sk_live_..."  # noqa: N815 - OpenAPI's spelling
    openapi_description = "A secret key: `Authorization: Bearer sk_live_...`. Server to server only."

    def __call__(self, request: HttpRequest) -> Any:
        return getattr(request, "herald_key", None)


class PublishableKey(AuthBase):
    openapi_type = "apiKey"
    openapi_in = "header"
    openapi_name = PUBLISHABLE_KEY_HEADER
    openapi_description = (
        "The organisation's publishable key (pk_live_...). Also accepted as `?pk=` or as "
        "`Authorization: Bearer pk_live_...`. The request's Origin must be on the key's allow-list."
    )

    def __call__(self, request: HttpRequest) -> Any:
        return getattr(request, "herald_subscriber_id", None)


WIDGET_SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "SubscriberId": {
        "type": "apiKey",
        "in": "header",
        "name": SUBSCRIBER_HEADER,
        "description": "The subscriber's id as the customer names it (optional with a token: its `sub` is used).",
    },
    "SubscriberHash": {
        "type": "apiKey",
        "in": "header",
        "name": SUBSCRIBER_HASH_HEADER,
        "description": "hex(HMAC-SHA256(signing secret, subscriber id)), computed by the customer's backend.",
    },
    "SubscriberToken": {
        "type": "apiKey",
        "in": "header",
        "name": SUBSCRIBER_TOKEN_HEADER,
        "description": (
            "A subscriber JWT (HS256 with the signing secret, `sub` = subscriber id, `exp` required), e.g. from "
            "POST /v1/subscribers/{id}/tokens. May instead be sent as `Authorization: Bearer <jwt>` when the "
            "publishable key travels in X-Herald-Publishable-Key or ?pk=."
        ),
    },
}


# --- the API ------------------------------------------------------------------------------


DESCRIPTION = f"""
Herald's API. Server calls use a **secret key** (`Authorization: Bearer sk_live_...`); the inbox widget
uses a **publishable key** plus a **subscriber proof** (`X-Herald-Subscriber` with
`X-Herald-Subscriber-Hash`, or a subscriber JWT in `X-Herald-Subscriber-Token`).

Every POST accepts an `Idempotency-Key` header (1-255 printable ASCII characters): the same key with the
same body returns the stored first response (header `Idempotent-Replayed: true`) and writes nothing; the
same key with another body is refused with `idempotency-key-reused`. Keys are kept at least 24 hours.

Lists are paginated with opaque cursors: `limit` (1-100), then `next_cursor` while `has_more`.

Each key has a token-bucket rate limit set by the organisation's plan; every answer carries `RateLimit`
and `RateLimit-Policy` headers, a refusal is `429` with `Retry-After`. Bodies are limited to 256 KiB.

## Errors

Errors are RFC 9457 `application/problem+json` documents; branch on `type`:

{problem_types_markdown()}
"""

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "enum": [p.uri for p in PROBLEM_TYPES.values()]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "field": {"type": "string"},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}

_COMMON_ERRORS = {
    "400": "Malformed JSON, cursor or Idempotency-Key",
    "401": "Missing, invalid, revoked or expired key (or subscriber proof)",
    "413": "Body over 256 KiB",
    "422": "Validation failed (see `errors`), or an Idempotency-Key reused with another body",
    "429": "Rate limited: see Retry-After",
}


class HeraldAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: Any = None) -> Any:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        schemes = components.setdefault("securitySchemes", {})
        schemes.update(WIDGET_SECURITY_SCHEMES)
        problem_content = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                errors = dict(_COMMON_ERRORS)
                if "{" in path:
                    errors["404"] = "No such resource in this organisation"
                security = operation.get("security") or []
                widget = any("PublishableKey" in entry for entry in security)
                if widget:
                    errors["403"] = "Origin not on the publishable key's allow-list"
                    operation["security"] = [
                        {"PublishableKey": [], "SubscriberId": [], "SubscriberHash": []},
                        {"PublishableKey": [], "SubscriberToken": []},
                    ]
                for status, text in errors.items():
                    responses.setdefault(status, {"description": text})
                for status, response in responses.items():
                    if int(status) >= 400:
                        response["content"] = problem_content
        return schema


api = HeraldAPI(
    title="Herald API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
    parser=HeraldParser(),
)


_LOCATIONS = ("body", "query", "path", "header", "cookie")


def validation_errors(raw_errors: Any) -> list[dict[str, Any]]:
    """pydantic / django-ninja errors as the `errors` member of a validation-error problem.

    `loc` is where the value was: its location, then the path inside it (["body", "to", 0], ["query",
    "limit"]); the name of the view's body parameter, which django-ninja puts second, is left out. `field` is
    that path dotted ("to.0", "limit"), or the location itself for an error about the whole body ("body").
    """
    errors = []
    for error in raw_errors:
        loc = [part for part in error.get("loc", ()) if isinstance(part, str | int)]
        if len(loc) >= 2 and loc[0] == "body":
            del loc[1]
        inner = loc[1:] if loc and loc[0] in _LOCATIONS else loc
        errors.append(
            {
                "loc": loc,
                "field": ".".join(str(part) for part in inner) or (str(loc[0]) if loc else ""),
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return errors


@api.exception_handler(Problem)
def _on_problem(request: HttpRequest, exc: Problem) -> HttpResponse:
    return exc.response(request.path)


@api.exception_handler(NinjaValidationError)
def _on_validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors = validation_errors(exc.errors)
    detail = "; ".join(f"{e['field'] or 'body'}: {e['msg']}" for e in errors[:5]) or None
    return problem_response("validation-error", detail, instance=request.path, errors=errors)


@api.exception_handler(HttpError)
def _on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    slug = {400: "invalid-json", 401: "authentication-required", 404: "not-found", 405: "method-not-allowed"}.get(
        exc.status_code, "validation-error" if exc.status_code == 422 else "internal-error"
    )
    return problem_response(slug, instance=request.path)


@api.exception_handler(Http404)
def _on_404(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem_response("not-found", instance=request.path)


@api.exception_handler(Exception)
def _on_exception(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unhandled error in %s %s", request.method, request.path)
    return problem_response("internal-error", instance=request.path)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: a problem document under /v1/, Django's page elsewhere."""
    if request.path.startswith("/v1/"):
        return problem_response("not-found", "No such endpoint", instance=request.path)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)
