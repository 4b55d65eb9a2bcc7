"""Helpers of the API tests: calls with a persona's key, through a real server (`live_api`) or django.test.Client."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
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


class LiveResponse:
    """An httpx response read like Django's test responses (`response["Header"]`, `"Header" in response`)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        self.content = response.content
        self.text = response.text
        self.headers = response.headers

    def json(self) -> Any:
        return self.response.json()

    def __getitem__(self, name: str) -> str:
        return self.response.headers[name]

    def __contains__(self, name: str) -> bool:
        return name in self.response.headers


class LiveApi(Api):
    """A client that speaks for one key to a real Herald server (tests.servers.HeraldServer) over HTTP."""

    def __init__(self, url: str, key: str | None, **headers: str) -> None:
        super().__init__(key, **headers)
        self.url = url

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, **headers: str) -> Any:
        content: bytes | None = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {**self.headers, **headers}
        if content is not None:
            all_headers.setdefault("Content-Type", "application/json")
        encoded = [(name.encode(), value.encode()) for name, value in all_headers.items()]  # UTF-8, as sent raw
        response = httpx.request(method, self.url + path, content=content, headers=encoded, timeout=30)
        return LiveResponse(response)


def live_api(org: Org, server: Any) -> LiveApi:
    """The server API of `org` through `server` (a running HeraldServer)."""
    return LiveApi(server.url, org.secret_key)


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


class FrontWithoutDjango:
    """The /v1 front in process over a stand-in for Django that answers 599 and records what reached it: which
    requests the front serves itself, and which it hands on."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        from herald.front import front
        from notifications.lean import ROUTES

        self.headers = headers
        self.reached: list[str] = []
        self.app = front(self._django, self._django, ROUTES)

    async def _django(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.reached.append(f"{scope['method']} {scope['path']}")
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def call(self, method: str, path: str, body: Any = None, query: bytes = b"") -> int:
        """One request through the front; its status."""
        payload = json.dumps(body).encode() if body is not None else b""
        messages = [{"type": "http.request", "body": payload, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": query,
            "headers": self.headers,
            "client": ("127.0.0.1", 1),
        }
        await self.app(scope, receive, send)
        return int(sent[0]["status"])


def secret_headers(org: Org) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {org.secret_key}".encode())]
