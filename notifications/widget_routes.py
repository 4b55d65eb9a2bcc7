"""The widget's inbox routes as ASGI routes of the /v1 front (herald.front), on the event loop.

GET /v1/inbox/notifications, GET /v1/inbox/unread-count, POST /v1/inbox/notifications/{id}/read|unread|archive
and POST /v1/inbox/read-all: what herald.operations.widget_operation does for Django's views, in the same order
and with the same answers, but with no Django and no sync thread: the publishable key (the key cache with async
Redis), the Origin allow-list, the subscriber proof (checked against the live signing secrets read on the send
pool; a refused proof spends a token of the client address's bad-proof bucket), a token of the subscriber's own
bucket, then notifications.inbox. CORS and rate-limit headers go on every answer and problem, as Django's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

import pydantic
from pydantic import Field

from herald.errors import unknown_query_refuse, validation_detail, validation_errors
from herald.front import CORS_EXPOSE_HEADERS, FrontAnswer, FrontContext, Route, api_key_resolve_async
from herald.problems import Problem
from notifications import inbox, sending, subscribing
from notifications.proofs import signing_secrets_load, subscriber_proof_given, subscriber_proof_verify
from notifications.schemas import CATEGORY_PATTERN
from tenants.origins import origin_allowed
from tenants.ratelimit import (
    RateDecision,
    bad_proof_identity,
    bad_proof_take,
    publishable_identity,
    rate_limit_take_async,
    refusal_remember,
)
from tenants.resolve import PUBLISHABLE_KEY_HEADER, ResolvedKey, publishable_key_given

INBOX_PATH = "/v1/inbox/notifications"
UNREAD_PATH = "/v1/inbox/unread-count"
READ_ALL_PATH = "/v1/inbox/read-all"
MARK_ACTIONS = ("read", "unread", "archive")
MESSAGE_ID_MAX_LENGTH = 64  # notifications.api.MessageIdPath: a longer id is Django's to refuse


class InboxQuery(pydantic.BaseModel):
    """The query of GET /v1/inbox/notifications, as notifications.api.inbox_list declares it."""

    limit: Annotated[int, Field(ge=1, le=100)] = 50
    cursor: Annotated[str | None, Field(max_length=200)] = None
    read: bool | None = None
    archived: bool | None = False
    category: Annotated[str | None, Field(pattern=CATEGORY_PATTERN)] = None


@dataclass(frozen=True)
class WidgetCaller:
    """A widget request that proved its subscriber and took a token of that subscriber's bucket."""

    key: ResolvedKey
    subscriber_id: str
    tenant: subscribing.Tenant


def _query(context: FrontContext) -> dict[str, str]:
    """The query parameters, the last value of each winning (as Django's QueryDict.get reads them)."""
    return dict(parse_qsl(context.query_string.decode("latin-1"), keep_blank_values=True))


async def _proven_subscriber(context: FrontContext, key: ResolvedKey, bearer_token: str | None) -> str:
    """The subscriber the request proved, against the organisation's live secrets read now (as Django reads them);
    a refused proof spends a token of the client address's bad-proof bucket, and with that empty: 429."""
    try:
        subscriber_id, given_hash, token = subscriber_proof_given(context.header, bearer_token)
        async with (await sending.connection_pool()).connection() as conn:
            secrets = await signing_secrets_load(conn, key.organization_id)
        proof = subscriber_proof_verify(
            organization_id=key.organization_id,
            subscriber_id=subscriber_id,
            subscriber_hash=given_hash,
            token=token,
            secrets=[secret.secret for secret in secrets],
        )
        if proof is None:
            raise Problem("invalid-subscriber-proof")
        return proof.subscriber_id
    except Problem:
        identity = bad_proof_identity(key.key_hash, context.client)
        decision = bad_proof_take(identity)
        if not decision.allowed:
            refusal_remember(identity, decision, key.allowed_origins)
            raise Problem("rate-limited", headers=decision.headers()) from None
        raise


async def _key_touch(api_key_id: int) -> None:
    async with (await sending.connection_pool()).connection() as conn:
        await conn.execute(f"UPDATE public.{sending.T_APIKEY} SET last_used_at = now() WHERE id = %s", [api_key_id])


@dataclass
class _Checked:
    """How far a widget request got through the checks (its answer's headers depend on it)."""

    key: ResolvedKey | None = None
    origin: str | None = None  # the Origin, once the key allowed it: granted in the CORS headers
    decision: RateDecision | None = None


async def _authenticated(context: FrontContext, declared: frozenset[str], checked: _Checked) -> WidgetCaller:
    """herald.operations.widget_operation's checks, in its order, noting in `checked` how far it got."""
    given, bearer_token = publishable_key_given(
        authorization=context.header("Authorization"),
        header=context.header(PUBLISHABLE_KEY_HEADER),
        query=_query(context).get("pk"),
    )
    key = await api_key_resolve_async(given)
    if key is None or key.kind != "publishable":
        raise Problem("invalid-api-key")
    if context.origin and not origin_allowed(context.origin, list(key.allowed_origins)):
        raise Problem("origin-not-allowed")
    checked.key, checked.origin = key, context.origin
    subscriber_id = await _proven_subscriber(context, key, bearer_token)
    decision, touch = await rate_limit_take_async(api_key_id=key.api_key_id, plan=key.plan, subject=subscriber_id)
    if not decision.allowed:
        refusal_remember(publishable_identity(key.key_hash, subscriber_id), decision, key.allowed_origins)
        raise Problem("rate-limited", headers=decision.headers())
    checked.decision = decision
    if touch:
        await _key_touch(key.api_key_id)
    unknown_query_refuse(set(_query(context)), declared | {"pk"})
    tenant = subscribing.Tenant(organization_id=key.organization_id, schema_name=key.schema_name)
    return WidgetCaller(key=key, subscriber_id=subscriber_id, tenant=tenant)


def _headers(checked: _Checked) -> dict[str, str]:
    """The rate-limit and CORS headers Django's widget answers carry at this point of the checks."""
    headers = checked.decision.headers() if checked.decision is not None else {}
    if checked.origin:
        headers.update(
            {"Access-Control-Allow-Origin": checked.origin, "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS}
        )
    return {**headers, "Vary": "Origin"}


def widget_route(run: Any, declared: frozenset[str] = frozenset()) -> Route:
    """An ASGI route that authenticates a widget request, then answers `run(context, caller)` with its headers."""

    async def routed(context: FrontContext, body: bytes) -> FrontAnswer:
        checked = _Checked()
        try:
            caller = await _authenticated(context, declared, checked)
            status, answer = await run(context, caller)
        except Problem as problem:
            extra = _headers(checked)
            problem.headers = {**{k: v for k, v in extra.items() if k != "Vary"}, **problem.headers, "Vary": "Origin"}
            raise
        return FrontAnswer(status, answer, _headers(checked))

    return routed


def _validation_problem(exc: pydantic.ValidationError, location: str) -> Problem:
    errors = validation_errors({**error, "loc": (location, *error.get("loc", ()))} for error in exc.errors())
    return Problem("validation-error", validation_detail(errors), errors=errors)


async def _inbox_list(context: FrontContext, caller: WidgetCaller) -> tuple[int, Any]:
    try:
        query = InboxQuery.model_validate(_query(context))
    except pydantic.ValidationError as exc:
        raise _validation_problem(exc, "query") from None
    page = await inbox.inbox_page(
        tenant=caller.tenant,
        subscriber_id=caller.subscriber_id,
        cursor=query.cursor,
        limit=query.limit,
        read=query.read,
        archived=query.archived,
        category=query.category,
    )
    return 200, {"items": page.items, "next_cursor": page.next_cursor, "has_more": page.has_more}


async def _unread_count(context: FrontContext, caller: WidgetCaller) -> tuple[int, Any]:
    return 200, {"count": await inbox.unread_count(tenant=caller.tenant, subscriber_id=caller.subscriber_id)}


async def _read_all(context: FrontContext, caller: WidgetCaller) -> tuple[int, Any]:
    return 200, await inbox.inbox_read_all(tenant=caller.tenant, subscriber_id=caller.subscriber_id)


async def _mark(context: FrontContext, caller: WidgetCaller) -> tuple[int, Any]:
    message_id, _, action = context.path[len(INBOX_PATH) + 1 :].partition("/")
    item = await inbox.inbox_item_mark(
        tenant=caller.tenant, subscriber_id=caller.subscriber_id, message_id=message_id, action=action
    )
    return 200, item


_LIST = widget_route(_inbox_list, frozenset(InboxQuery.model_fields))
_UNREAD = widget_route(_unread_count)
_READ_ALL = widget_route(_read_all)
_MARK = widget_route(_mark)

EXACT: dict[tuple[str, str], Route] = {
    ("GET", INBOX_PATH): _LIST,
    ("GET", UNREAD_PATH): _UNREAD,
    ("POST", READ_ALL_PATH): _READ_ALL,
}


def widget_route_for(method: str, path: str) -> Route | None:
    """The mark route of POST /v1/inbox/notifications/{id}/{action} when Django would take that id, else None."""
    if method != "POST" or not path.startswith(INBOX_PATH + "/"):
        return None
    message_id, _, action = path[len(INBOX_PATH) + 1 :].partition("/")
    if action not in MARK_ACTIONS or not message_id or len(message_id) > MESSAGE_ID_MAX_LENGTH:
        return None
    return _MARK
