"""POST /v1/notifications and /batch as ASGI routes of the /v1 front (herald.front), on the event loop.

Sending is Herald's hot path (docs/architecture.md, "the lean send path"): Django's ASGI handler, its
middleware and an ORM call through `sync_to_async` cost several milliseconds a request. So in the server
these two routes are served here, before Django: the front has checked the body limit, resolved the key
and taken its token; this parses and validates the body with the API's own models (notifications.schemas),
reads the Idempotency-Key, and hands the send to the engine (notifications.sending), with or without a
key. The Django views of the same routes do the same for Django alone (the test client, say).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import pydantic

from herald.errors import json_parse, unknown_query_refuse, validation_detail, validation_errors
from herald.front import FrontAnswer, FrontContext, Route
from herald.problems import Problem
from notifications import sending
from notifications.idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADER, idempotency_claim_from_header

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


ROUTES: dict[tuple[str, str], Route] = {
    ("POST", PATH): notification_send,
    ("POST", BATCH_PATH): notification_send_batch,
}
