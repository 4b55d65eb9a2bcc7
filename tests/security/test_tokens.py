"""Subscriber tokens a widget may present: only short-lived HS256 tokens signed with a live secret pass.

Each refused token is a 401 `invalid-subscriber-proof` problem over HTTP and a 4401 close on the socket,
never a 500 or a dropped (1006) socket.
"""

from __future__ import annotations

import base64
import json
import time
import warnings
from typing import Any

import jwt
import jwt.warnings
import pytest

from tests.conftest import Org
from tests.notifications.realtime_support import open_socket, signing_secret
from tests.security.support import problem_of, server_log_tracebacks, token_headers, widget_get
from tests.servers import HeraldServer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(secret: str, claims: dict[str, Any], algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm=algorithm)


def _hostile_tokens(secret: str, subscriber_id: str) -> dict[str, str]:
    now = int(time.time())
    good = _signed(secret, {"sub": subscriber_id, "exp": now + 300})
    header, payload, signature = good.split(".")
    tampered_payload = _b64(json.dumps({"sub": "someone-else", "exp": now + 300}).encode())
    return {
        "exp in year 10000": _signed(secret, {"sub": subscriber_id, "exp": 253_402_300_800}),
        "exp as a numeric string": _signed(secret, {"sub": subscriber_id, "exp": str(now + 300)}),
        "exp as a bool": _signed(secret, {"sub": subscriber_id, "exp": True}),
        "exp huge": _signed(secret, {"sub": subscriber_id, "exp": 10**30}),
        "exp a week ahead": _signed(secret, {"sub": subscriber_id, "exp": now + 7 * 86400}),
        "iat to exp over 24 h": _signed(secret, {"sub": subscriber_id, "iat": now - 86400, "exp": now + 3600}),
        "no exp": _signed(secret, {"sub": subscriber_id}),
        "expired": _signed(secret, {"sub": subscriber_id, "exp": now - 5}),
        "alg none": jwt.encode({"sub": subscriber_id, "exp": now + 300}, None, algorithm="none"),
        "HS512": _signed(secret, {"sub": subscriber_id, "exp": now + 300}, "HS512"),
        "wrong secret": _signed("not-the-signing-secret-of-this-org", {"sub": subscriber_id, "exp": now + 300}),
        "tampered sub": f"{header}.{tampered_payload}.{signature}",
        "truncated": good[:-5],
    }


def test_hostile_tokens_are_refused_as_proof_errors_over_http(herald_server: HeraldServer, acme: Org) -> None:
    secret = signing_secret(acme)
    before = server_log_tracebacks(herald_server)
    for name, token in _hostile_tokens(secret, "ada").items():
        response = widget_get(herald_server, acme, **token_headers(token), **{"X-Herald-Subscriber": "ada"})
        assert response.status_code == 401, (name, response.status_code, response.text[:200])
        assert problem_of(response) == "invalid-subscriber-proof", name
    assert server_log_tracebacks(herald_server) == before


def test_a_token_of_up_to_24_hours_is_accepted(herald_server: HeraldServer, acme: Org) -> None:
    secret = signing_secret(acme)
    now = int(time.time())
    for claims in ({"exp": now + 86400}, {"iat": now, "exp": now + 86400}, {"exp": now + 60.5}):
        token = _signed(secret, {"sub": "ada", **claims})
        response = widget_get(herald_server, acme, **token_headers(token), **{"X-Herald-Subscriber": "ada"})
        assert response.status_code == 200, (claims, response.text[:200])


@pytest.fixture
def acme_secret(acme: Org) -> str:
    return signing_secret(acme)


@pytest.mark.parametrize("name", list(_hostile_tokens("x", "ada")))
async def test_hostile_tokens_close_the_socket_with_4401(
    herald_server: HeraldServer, acme: Org, acme_secret: str, name: str
) -> None:
    token = _hostile_tokens(acme_secret, "ada")[name]
    client = await open_socket(herald_server, acme)
    await client.send({"type": "auth", "subscriber_id": "ada", "token": token, "cursor": None})
    assert await client.closed_with() == 4401, name
