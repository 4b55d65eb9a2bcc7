"""POST /v1/notifications and /batch as ASGI routes of the /v1 front (herald.front), on the event loop.

Sending is Herald's hot path (docs/architecture.md, "the lean send path"): Django's ASGI handler, its
middleware and an ORM call through `sync_to_async` cost several milliseconds a request. So in the server
these two routes are served here, before Django: the front has checked the body limit, resolved the key
and taken its token; this parses and validates the body with the API's own models (notifications.schemas),
reads the Idempotency-Key, and hands the send to the engine (notifications.sending), with or without a
key. The Django views of the same routes do the same for Django alone (the test client, say).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

import pydantic

from herald.errors import json_parse, unknown_query_refuse, validation_detail, validation_errors
from herald.front import FrontAnswer, FrontContext, Route
from herald.problems import Problem
from notifications import sending, subscribing, topics, widget_routes
from notifications.idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADER, idempotency_claim_from_header
from notifications.schemas import subscriber_id_valid, topic_key_valid

PATH = "/v1/notifications"
BATCH_PATH = "/v1/notifications/batch"


def _validated(model: Any, data: Any) -> Any:
    if data is None:  # an empty body (or null): worded as django-ninja's missing body is
        errors = validation_errors([{"loc": ("body", "payload"), "type": "missing", "msg": "Field required"}])
        raise Problem("validation-error", validation_detail(errors), errors=errors)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = validation_errors(
            {**error, "loc": ("body", "payload", *error.get("loc", ()))} for error in exc.errors()
        )
        raise Problem("validation-error", validation_detail(errors), errors=errors) from None


def _no_query(context: FrontContext) -> None:
    """The send routes take no query parameters: refused as on every other route (herald.operations)."""
    if context.query_string:
        given = {name for name, _ in parse_qsl(context.query_string.decode("latin-1"), keep_blank_values=True)}
        unknown_query_refuse(given, frozenset())


def _sender(context: FrontContext) -> sending.Sender:
    assert context.key is not None  # the front resolved it
    return sending.Sender.for_key(context.key, touch=context.touch)


def _answer(answer: sending.SendAnswer) -> FrontAnswer:
    return FrontAnswer(answer.status, answer.body, {REPLAYED_HEADER: "true"} if answer.replayed else {})


def _idempotency(context: FrontContext, data: Any) -> Any:
    return idempotency_claim_from_header(path=context.path, header=context.header(IDEMPOTENCY_HEADER), data=data)


def _checked_key(context: FrontContext) -> None:
    """A malformed Idempotency-Key is refused before the body is looked at (as Django's operations do)."""
    header = context.header(IDEMPOTENCY_HEADER)
    if header is not None:
        idempotency_claim_from_header(path=context.path, header=header, data=None)


async def notification_send(context: FrontContext, body: bytes) -> FrontAnswer:
    """POST /v1/notifications."""
    from notifications.schemas import NotificationIn

    _no_query(context)
    _checked_key(context)
    data = json_parse(body) if body else None
    payload = _validated(NotificationIn, data)
    answer = await sending.notification_send(
        sender=_sender(context), draft=payload.draft(), idempotency=_idempotency(context, data)
    )
    return _answer(answer)


async def notification_send_batch(context: FrontContext, body: bytes) -> FrontAnswer:
    """POST /v1/notifications/batch."""
    from notifications.schemas import BatchIn

    _no_query(context)
    _checked_key(context)
    data = json_parse(body) if body else None
    payload = _validated(BatchIn, data)
    answer = await sending.notification_send_batch(
        sender=_sender(context), drafts=payload.drafts(data), idempotency=_idempotency(context, data)
    )
    return _answer(answer)


# --- subscribers (notifications.subscribing) ------------------------------------------------------

SUBSCRIBERS_PATH = "/v1/subscribers/"
BULK_PATH = "/v1/subscribers/bulk"


def _tenant(context: FrontContext) -> subscribing.Tenant:
    assert context.key is not None  # the front resolved it
    return subscribing.Tenant(organization_id=context.key.organization_id, schema_name=context.key.schema_name)


def _path_subscriber(context: FrontContext, suffix: str = "") -> str:
    """The subscriber id of /v1/subscribers/{id}[suffix] (RouteTable only routes valid ones here)."""
    return context.path[len(SUBSCRIBERS_PATH) : len(context.path) - len(suffix)]


async def subscriber_put(context: FrontContext, body: bytes) -> FrontAnswer:
    """PUT /v1/subscribers/{id}."""
    from notifications.schemas import SubscriberIn

    data = json_parse(body) if body else None
    payload = _validated(SubscriberIn, data)
    fields = {name: value for name, value in payload.model_dump(exclude_unset=True).items() if value is not None}
    found = await subscribing.subscriber_upsert(
        tenant=_tenant(context), external_id=_path_subscriber(context), fields=fields
    )
    return FrontAnswer(200, subscribing.subscriber_out_json(found))


async def subscriber_get(context: FrontContext, body: bytes) -> FrontAnswer:
    """GET /v1/subscribers/{id}."""
    found = await subscribing.subscriber_get(tenant=_tenant(context), external_id=_path_subscriber(context))
    if found is None:
        raise Problem("not-found", "No such subscriber")
    return FrontAnswer(200, subscribing.subscriber_out_json(found))


async def subscriber_delete(context: FrontContext, body: bytes) -> FrontAnswer:
    """DELETE /v1/subscribers/{id}: 204, no body."""
    if not await subscribing.subscriber_delete(tenant=_tenant(context), external_id=_path_subscriber(context)):
        raise Problem("not-found", "No such subscriber")
    return FrontAnswer(204, None)


def _replayed(status: int, answer: Any, replayed: bool) -> FrontAnswer:
    return FrontAnswer(status, answer, {REPLAYED_HEADER: "true"} if replayed else {})


async def subscriber_token_issue(context: FrontContext, body: bytes) -> FrontAnswer:
    """POST /v1/subscribers/{id}/tokens (an Idempotency-Key replays the first token)."""
    from notifications.schemas import TokenIn

    _checked_key(context)
    data = json_parse(body) if body else None
    payload = TokenIn.model_validate({}) if data is None else _validated(TokenIn, data)
    status, answer, replayed = await subscribing.subscriber_token_issue(
        tenant=_tenant(context),
        external_id=_path_subscriber(context, "/tokens"),
        expires_in=payload.expires_in,
        idempotency=_idempotency(context, data),
    )
    return _replayed(status, answer, replayed)


async def subscribers_import(context: FrontContext, body: bytes) -> FrontAnswer:
    """POST /v1/subscribers/bulk."""
    from notifications.schemas import SubscribersImportIn

    await _key_touch(context)
    _checked_key(context)
    data = json_parse(body) if body else None
    payload = _validated(SubscribersImportIn, data)
    status, answer, replayed = await subscribing.subscribers_import(
        tenant=_tenant(context),
        subscribers=[(item.id, item.fields()) for item in payload.subscribers],
        idempotency=_idempotency(context, data),
    )
    return _replayed(status, answer, replayed)


_SUBSCRIBER_ROUTES: dict[str, Route] = {"PUT": subscriber_put, "GET": subscriber_get, "DELETE": subscriber_delete}


# --- topics (notifications.topics) ------------------------------------------------------------------

TOPICS_PATH = "/v1/topics/"


def _path_topic(context: FrontContext) -> tuple[str, str | None]:
    """The topic key of /v1/topics/{key}[/subscribers[/{subscriber id}]], and the subscriber id if any."""
    key, _, rest = context.path[len(TOPICS_PATH) :].partition("/")
    _, _, subscriber_id = rest.partition("/")
    return key, subscriber_id or None


async def topic_put(context: FrontContext, body: bytes) -> FrontAnswer:
    """PUT /v1/topics/{key}."""
    from notifications.schemas import TopicIn

    payload = _validated(TopicIn, json_parse(body) if body else None)
    key, _ = _path_topic(context)
    return FrontAnswer(200, await topics.topic_upsert(tenant=_tenant(context), key=key, name=payload.name))


async def topic_subscribers_add(context: FrontContext, body: bytes) -> FrontAnswer:
    """POST /v1/topics/{key}/subscribers (an Idempotency-Key replays the first answer)."""
    from notifications.schemas import TopicSubscribersIn

    _checked_key(context)
    data = json_parse(body) if body else None
    payload = _validated(TopicSubscribersIn, data)
    key, _ = _path_topic(context)
    status, answer, replayed = await topics.topic_subscribers_add(
        tenant=_tenant(context),
        key=key,
        external_ids=payload.subscriber_ids,
        idempotency=_idempotency(context, data),
    )
    return _replayed(status, answer, replayed)


async def topic_subscriber_remove(context: FrontContext, body: bytes) -> FrontAnswer:
    """DELETE /v1/topics/{key}/subscribers/{subscriber_id}: 204, no body."""
    key, subscriber_id = _path_topic(context)
    assert subscriber_id is not None  # RouteTable routes only paths that name one
    await topics.topic_subscriber_remove(tenant=_tenant(context), key=key, external_id=subscriber_id)
    return FrontAnswer(204, None)


def _topic_route(method: str, path: str) -> Route | None:
    """The ASGI route of a topic path whose key (and subscriber id) Django would take, else None."""
    parts = path[len(TOPICS_PATH) :].split("/")
    if not topic_key_valid(parts[0]):
        return None
    if len(parts) == 1:
        return topic_put if method == "PUT" else None
    if len(parts) == 2 and parts[1] == "subscribers":
        return topic_subscribers_add if method == "POST" else None
    if len(parts) == 3 and parts[1] == "subscribers" and subscriber_id_valid(parts[2]):
        return topic_subscriber_remove if method == "DELETE" else None
    return None


class RouteTable(Mapping[tuple[str, str], Route]):
    """The front's ASGI routes by (method, path): exact paths, plus /v1/subscribers/{id} and its /tokens, PUT
    /v1/topics/{key} and the topic's membership (POST .../subscribers, DELETE .../subscribers/{id}).

    Only what these routes answer exactly as Django would is routed here: a path whose subscriber id Django would
    refuse (herald.wording's validation-error with its `loc`), or that carries a query string, goes on to Django.
    """

    def __init__(self, exact: dict[tuple[str, str], Route]) -> None:
        self.exact = exact

    def __getitem__(self, key: tuple[str, str]) -> Route:
        route = self.get(key)
        if route is None:
            raise KeyError(key)
        return route

    def get(self, key: tuple[str, str], default: Any = None) -> Any:  # type: ignore[override]
        route = self.exact.get(key)
        if route is not None:
            return route
        method, path = key
        if path.startswith(widget_routes.INBOX_PATH + "/"):
            return widget_routes.widget_route_for(method, path) or default
        if path.startswith(TOPICS_PATH):
            topic_route = _topic_route(method, path)
            return _without_query(topic_route) if topic_route is not None else default
        if not path.startswith(SUBSCRIBERS_PATH):
            return default
        rest = path[len(SUBSCRIBERS_PATH) :]
        if method == "POST" and rest.endswith("/tokens"):
            route, rest = subscriber_token_issue, rest.removesuffix("/tokens")
        else:
            route = _SUBSCRIBER_ROUTES.get(method)
        if route is None or "/" in rest or not subscriber_id_valid(rest):
            return default
        return _without_query(route)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.exact)

    def __len__(self) -> int:
        return len(self.exact)


async def _key_touch(context: FrontContext) -> None:
    """Write the key's last_used_at when the front says it is due (the send engine does it in its own commit)."""
    if context.touch and context.key is not None:
        async with (await sending.connection_pool()).connection() as conn:
            await conn.execute(
                f"UPDATE public.{sending.T_APIKEY} SET last_used_at = now() WHERE id = %s", [context.key.api_key_id]
            )


def _without_query(route: Route) -> Route:
    async def routed(context: FrontContext, body: bytes) -> FrontAnswer:
        _no_query(context)  # none of these routes takes a query parameter
        await _key_touch(context)
        return await route(context, body)

    return routed


ROUTES = RouteTable(
    {
        ("POST", PATH): notification_send,
        ("POST", BATCH_PATH): notification_send_batch,
        ("POST", BULK_PATH): subscribers_import,
        **widget_routes.EXACT,
    }
)
