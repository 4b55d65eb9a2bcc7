"""Helpers of the API tests: calls through django.test.Client with a persona's key."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.test import Client

from notifications.proofs import signing_secrets_live
from tests.conftest import ALLOWED_ORIGIN, Org

PROBLEM = "https://herald.dev/problems/"


class Api:
    """A client that speaks for one key."""

    def __init__(self, key: str | None, **headers: str) -> None:
        self.client = Client()
        self.headers = dict(headers)
        if key is not None:
            self.headers["Authorization"] = f"Bearer {key}"

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, **headers: str) -> Any:
        data: Any = raw if raw is not None else (json.dumps(body) if body is not None else None)
        kwargs: dict[str, Any] = {"headers": {**self.headers, **headers}}
        if data is not None:
            kwargs["data"] = data
            kwargs["content_type"] = "application/json"
        return getattr(self.client, method.lower())(path, **kwargs)

    def get(self, path: str, **headers: str) -> Any:
        return self.call("GET", path, **headers)

    def post(self, path: str, body: Any = None, **headers: str) -> Any:
        return self.call("POST", path, body, **headers)

    def put(self, path: str, body: Any = None, **headers: str) -> Any:
        return self.call("PUT", path, body, **headers)

    def delete(self, path: str, **headers: str) -> Any:
        return self.call("DELETE", path, **headers)


def server_api(org: Org) -> Api:
    return Api(org.secret_key)


def subscriber_hash_for(org: Org, subscriber_id: str) -> str:
    secret = signing_secrets_live(org.organization.pk)[0]
    return hmac.new(secret.encode(), subscriber_id.encode(), hashlib.sha256).hexdigest()


def widget_api(org: Org, subscriber_id: str, *, origin: str | None = ALLOWED_ORIGIN) -> Api:
    headers = {
        "X-Herald-Publishable-Key": org.publishable_key,
        "X-Herald-Subscriber": subscriber_id,
        "X-Herald-Subscriber-Hash": subscriber_hash_for(org, subscriber_id),
    }
    if origin:
        headers["Origin"] = origin
    return Api(None, **headers)


def problem_type(response: Any) -> str:
    assert response["Content-Type"] == "application/problem+json", (response.status_code, response.content[:300])
    body = response.json()
    assert body["status"] == response.status_code
    return str(body["type"]).removeprefix(PROBLEM)
