"""The /v1 API's description: the NinjaAPI, its security schemes and the problem documents of OpenAPI.

django-ninja's `auth` objects only read what the front found (herald.front, herald.operations): they
exist so the OpenAPI document describes the security schemes.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import NinjaAPI
from ninja.security.base import AuthBase

from herald.errors import HeraldParser, register_error_handlers
from herald.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, problem_types_markdown
from notifications.proofs import SUBSCRIBER_HASH_HEADER, SUBSCRIBER_HEADER, SUBSCRIBER_TOKEN_HEADER
from tenants.resolve import PUBLISHABLE_KEY_HEADER

# --- security schemes (herald.operations does the work) ------------------------------


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
    "429": "Rate limited, or (sends) over the plan's monthly quota (`quota-exceeded`): see Retry-After",
}


# --- links: which answer names a resource that other operations take -------------------------------------

_SUBSCRIBER = "/v1/subscribers/{subscriber_id}"
_TOPIC = "/v1/topics/{key}"

# An answer that names a subscriber, topic or message, (method, path, status), the runtime expression (OpenAPI
# 3.1, 4.8.20.4) of each path parameter it names, and the operations (method, path) linked to it: each receives
# the parameters of its path, its others are the caller's. A few links each, the next steps a client takes:
# schemathesis's stateful phase follows one link a step, so a long list would rarely reach the read after a write.
_LINKS: tuple[tuple[tuple[str, str, str], dict[str, str], tuple[tuple[str, str], ...]], ...] = (
    (
        ("put", _SUBSCRIBER, "200"),
        {"subscriber_id": "$response.body#/id"},
        (("get", _SUBSCRIBER), ("delete", _SUBSCRIBER), ("get", _SUBSCRIBER + "/preferences")),
    ),
    # An erased subscriber is gone, and a deleted topic: reading it answers 404.
    (("delete", _SUBSCRIBER, "204"), {"subscriber_id": "$request.path.subscriber_id"}, (("get", _SUBSCRIBER),)),
    (
        ("put", _TOPIC, "200"),
        {"key": "$response.body#/key"},
        (("get", _TOPIC), ("delete", _TOPIC), ("post", _TOPIC + "/subscribers")),
    ),
    (("delete", _TOPIC, "204"), {"key": "$request.path.key"}, (("get", _TOPIC),)),
    # The first of a list (the fuzzing phases before the stateful one leave some in the organisation).
    (("get", "/v1/topics", "200"), {"key": "$response.body#/items/0/key"}, (("put", _TOPIC), ("get", _TOPIC))),
    # Unknown subscriber ids are created: the first one is a subscriber, in the topic.
    (
        ("post", _TOPIC + "/subscribers", "200"),
        {"key": "$request.path.key", "subscriber_id": "$request.body#/subscriber_ids/0"},
        (("put", _SUBSCRIBER), ("delete", _TOPIC + "/subscribers/{subscriber_id}"), ("put", _TOPIC)),
    ),
    # A message sent `to` subscribers (unknown ids are created) is in the first one's inbox.
    (
        ("post", "/v1/notifications", "202"),
        {"message_id": "$response.body#/id", "subscriber_id": "$request.body#/to/0"},
        (
            ("get", "/v1/messages/{message_id}"),
            ("put", _SUBSCRIBER),
            ("post", _SUBSCRIBER + "/notifications/{message_id}/read"),
        ),
    ),
)


def add_links(schema: dict[str, Any]) -> None:
    """Put the links of _LINKS in the document's responses."""
    paths = schema["paths"]
    for (method, path, status), expressions, targets in _LINKS:
        responses = paths[path][method]["responses"]  # a KeyError here: a linked route was renamed
        response = responses[status] if status in responses else responses[int(status)]  # ninja's keys are ints
        links = response.setdefault("links", {})
        for target_method, target_path in targets:
            operation_id = paths[target_path][target_method]["operationId"]
            links[operation_id.removeprefix("notifications_api_")] = {
                "operationId": operation_id,
                "parameters": {
                    f"path.{name}": expression
                    for name, expression in expressions.items()
                    if "{" + name + "}" in target_path
                },
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
        add_links(schema)
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
register_error_handlers(api)
