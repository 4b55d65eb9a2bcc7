"""The Django side of the /v1 front: the wrapper every django-ninja operation runs in.

Each operation is wrapped (`secret_operation` / `widget_operation`) by a pipeline that, before
django-ninja parses anything:

1. refuses bodies over 256 KiB (413);
2. takes the key and token the front found (herald.front.FrontContext), or resolves the key
   (tenants.resolve), checks the Origin for widget calls and takes a rate-limit token (429 with
   Retry-After / RateLimit headers);
3. activates the organisation's schema on this thread's connection, and always returns the
   connection to the public schema afterwards;
4. for widget calls, verifies the subscriber proof;
5. for POSTs with an `Idempotency-Key`, runs the operation inside one transaction that first claims
   the key (notifications.idempotency.idempotent_call).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone

from herald.errors import unknown_query_refuse
from herald.front import (
    CORS_ALLOW_HEADERS,
    CORS_EXPOSE_HEADERS,
    CORS_MAX_AGE,
    FRONT_SCOPE_KEY,
    MAX_BODY_BYTES,
    FrontContext,
)
from herald.problems import Problem, problem_response
from notifications.proofs import request_subscriber_proof
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
    ResolvedKey,
    origin_allowed_by_any_key,
    origin_check,
    request_publishable_key,
    request_secret_key,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"


def front_context(request: HttpRequest) -> FrontContext | None:
    """The FrontContext herald.front handed this request (None outside the server, e.g. Django's test client)."""
    scope = getattr(request, "scope", None)
    context = scope.get(FRONT_SCOPE_KEY) if isinstance(scope, dict) else None
    return context if isinstance(context, FrontContext) else None


def _body_check(request: HttpRequest) -> None:
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES or len(request.body) > MAX_BODY_BYTES:
        raise Problem("payload-too-large")


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
    answers the same key's (subscriber's) next requests itself until its next token (herald.front)."""
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
    """The key and token the front took for this request (herald.front), if it did."""
    context = front_context(request)
    if context is None or context.key is None or context.rate is None:
        return None, None
    request.herald_rate = context.rate  # type: ignore[attr-defined]
    if context.touch:
        ApiKey.objects.filter(pk=context.key.api_key_id).update(last_used_at=timezone.now())
    return context.key, context.rate


def _run_in_tenant(request: HttpRequest, key: ResolvedKey, run: Callable[[], HttpResponseBase]) -> HttpResponseBase:
    connection.set_tenant(key.organization())  # type: ignore[attr-defined]
    try:
        return run()
    finally:
        connection.set_schema_to_public()  # type: ignore[attr-defined]


def declared_query_names(run: Callable[..., Any]) -> frozenset[str]:
    """The query parameters a django-ninja operation declares (`run` is its bound `Operation.run`)."""
    # django-ninja keeps one pydantic model per parameter source on the Operation; no public API lists them.
    names: set[str] = set()
    for model in getattr(getattr(run, "__self__", None), "models", ()):
        if getattr(model, "__ninja_param_source__", None) == "query":
            names.update(field.alias or name for name, field in model.model_fields.items())
    return frozenset(names)


def unknown_query_check(request: HttpRequest, declared: frozenset[str]) -> None:
    """Raise Problem(validation-error) naming each query parameter the operation does not take."""
    unknown_query_refuse(set(request.GET), declared)


def secret_operation(*, idempotent: bool = False) -> Callable[..., Any]:
    """Wrap a server-API operation: secret key, rate limit, tenant schema, optional idempotency."""

    def decorate(run: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        declared = declared_query_names(run)

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
                unknown_query_check(request, declared)

                def call() -> HttpResponseBase:
                    if idempotent and request.method == "POST" and request.headers.get(IDEMPOTENCY_HEADER) is not None:
                        from notifications.idempotency import idempotent_call

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

    declared = declared_query_names(run) | {"pk"}  # `?pk=` may carry the publishable key

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
            unknown_query_check(request, declared)
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
