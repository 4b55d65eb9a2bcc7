"""Every operation of the OpenAPI document against the wrong kinds of credentials."""

from __future__ import annotations

from typing import Any

import pytest

from herald.v1 import api
from tenants.keys import key_hash
from tenants.models import ApiKey
from tenants.services import api_key_revoke
from tests.conftest import ALLOWED_ORIGIN, Org
from tests.notifications.api_support import Api, problem_type, subscriber_hash_for


def _operations(tag: str) -> list[tuple[str, str]]:
    schema: Any = api.get_openapi_schema()
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if tag in operation.get("tags", []):
                concrete = path.replace("{subscriber_id}", "someone").replace("{key}", "topic")
                concrete = concrete.replace("{message_id}", "00000000-0000-0000-0000-000000000000")
                found.append((method.upper(), concrete))
    return found


SERVER = _operations("server")
WIDGET = _operations("widget")


def test_the_matrix_covers_every_operation() -> None:
    assert len(SERVER) == 26 and len(WIDGET) == 8
    assert ("POST", "/v1/subscribers/bulk") in SERVER


@pytest.mark.parametrize(("method", "path"), SERVER)
def test_publishable_key_on_every_secret_endpoint_is_401(acme: Org, method: str, path: str) -> None:
    response = Api(acme.publishable_key).call(method, path, {} if method in ("POST", "PUT") else None)
    assert response.status_code == 401 and problem_type(response) == "publishable-key-not-allowed"


@pytest.mark.parametrize(("method", "path"), SERVER)
def test_revoked_secret_key_on_every_endpoint_is_401(acme: Org, method: str, path: str) -> None:
    api_key_revoke(api_key=ApiKey.objects.get(key_hash=key_hash(acme.secret_key)))
    response = Api(acme.secret_key).call(method, path, {} if method in ("POST", "PUT") else None)
    assert response.status_code == 401 and problem_type(response) == "invalid-api-key"


@pytest.mark.parametrize(("method", "path"), WIDGET)
def test_widget_endpoints_refuse_secret_keys_revoked_keys_and_missing_proofs(
    acme: Org, globex: Org, method: str, path: str
) -> None:
    body = {"categories": {}} if method == "PUT" else None
    secret = Api(None, **{"X-Herald-Publishable-Key": acme.secret_key}).call(method, path, body)
    assert secret.status_code == 401 and problem_type(secret) == "secret-key-not-allowed"
    no_proof = Api(None, **{"X-Herald-Publishable-Key": acme.publishable_key}).call(method, path, body)
    assert no_proof.status_code == 401 and problem_type(no_proof) == "invalid-subscriber-proof"
    foreign_proof = Api(
        None,
        **{
            "X-Herald-Publishable-Key": acme.publishable_key,
            "X-Herald-Subscriber": "someone",
            "X-Herald-Subscriber-Hash": subscriber_hash_for(globex, "someone"),
            "Origin": ALLOWED_ORIGIN,
        },
    ).call(method, path, body)
    assert foreign_proof.status_code == 401 and problem_type(foreign_proof) == "invalid-subscriber-proof"
    api_key_revoke(api_key=ApiKey.objects.get(key_hash=key_hash(acme.publishable_key)))
    revoked = Api(
        None,
        **{
            "X-Herald-Publishable-Key": acme.publishable_key,
            "X-Herald-Subscriber": "someone",
            "X-Herald-Subscriber-Hash": subscriber_hash_for(acme, "someone"),
        },
    ).call(method, path, body)
    assert revoked.status_code == 401 and problem_type(revoked) == "invalid-api-key"


def test_unknown_v1_routes_are_problem_documents(acme: Org) -> None:
    response = Api(acme.secret_key).get("/v1/no-such-thing")
    assert response.status_code == 404 and problem_type(response) == "not-found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("patch", "/v1/subscribers/ada", "DELETE, GET, PUT"),
        ("post", "/v1/usage", "GET"),
        ("put", "/v1/notifications", "POST"),
        ("patch", "/v1/inbox/preferences", "GET, OPTIONS, PUT"),
    ],
)
def test_a_method_a_route_does_not_serve_is_405_problem_with_allow(
    client: Any, acme: Org, method: str, path: str, allowed: str
) -> None:
    response = getattr(client, method)(path, HTTP_AUTHORIZATION=f"Bearer {acme.secret_key}")
    assert response.status_code == 405 and response["Content-Type"] == "application/problem+json"
    assert problem_type(response) == "method-not-allowed" and response["Allow"] == allowed
