"""Hostile input on the HTTP API of a real server: every answer is a 4xx problem document (never a 5xx), and
SQL or HTML in a notification is stored and served back verbatim."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import Org
from tests.security.support import problem_of
from tests.servers import HeraldServer


def _post(server: HeraldServer, org: Org, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/notifications",
        content=body,
        headers={"Authorization": f"Bearer {org.secret_key}", "Content-Type": "application/json", **headers},
        timeout=30,
    )


HOSTILE_BODIES = {
    "bad JSON": (b'{"to": ["ada"], "title": ', 400),
    "invalid UTF-8": (b'{"to": ["ada"], "title": "\xff\xfe"}', 400),
    "a lone surrogate": (b'{"to": ["ada"], "title": "\\ud800"}', 400),
    "NUL in a string": (b'{"to": ["ada"], "title": "a\\u0000b"}', 400),
    "JSON nested 10,000 deep": (b'{"to": ["ada"], "title": "t", "data": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400),
    "10 MB of data": (b'{"to": ["ada"], "title": "t", "data": {"x": "' + b"a" * 10_000_000 + b'"}}', 413),
    "a body over 256 KiB": (b'{"to": ["ada"], "title": "' + b"a" * 300_000 + b'"}', 413),
    "not an object": (b"[1, 2, 3]", 422),
}


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_hostile_bodies_are_4xx_problems(herald_server: HeraldServer, acme: Org, name: str) -> None:
    body, status = HOSTILE_BODIES[name]
    response = _post(herald_server, acme, body)
    assert response.status_code == status, (name, response.status_code, response.text[:200])
    problem_of(response)


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "key with é", "x" * 256, ""])
def test_a_hostile_idempotency_key_is_a_400_problem_and_nothing_is_injected(
    herald_server: HeraldServer, acme: Org, value: str
) -> None:
    raw = value.encode("utf-8")
    try:
        response = httpx.post(
            herald_server.url + "/v1/notifications",
            json={"to": ["ada"], "title": "t"},
            headers=[(b"Authorization", f"Bearer {acme.secret_key}".encode()), (b"Idempotency-Key", raw)],
            timeout=10,
        )
    except httpx.LocalProtocolError:
        return  # the client refuses to send a header with CR/LF: nothing reaches the server
    assert response.status_code == 400, (value, response.status_code, response.text[:200])
    assert problem_of(response) == "invalid-idempotency-key"
    assert "x-injected" not in response.headers


def test_sql_and_html_payloads_are_stored_and_served_verbatim(herald_server: HeraldServer, acme: Org) -> None:
    title = "'; DROP TABLE notifications_message; --"
    body = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    data = {"q": "1 OR 1=1", "html": "</script><b>x</b>"}
    sent = _post(herald_server, acme, json.dumps({"to": ["ada"], "title": title, "body": body, "data": data}).encode())
    assert sent.status_code == 202, sent.text
    message = httpx.get(
        herald_server.url + f"/v1/messages/{sent.json()['id']}",
        headers={"Authorization": f"Bearer {acme.secret_key}"},
        timeout=10,
    )
    assert message.status_code == 200, message.text
    got = message.json()
    assert (got["title"], got["body"], got["data"]) == (title, body, data)
