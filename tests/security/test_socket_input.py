"""Hostile frames on /v1/ws, before and after `auth`: a protocol answer (4400 before auth, an `error` frame
after), never a dropped socket (1006) and never a traceback in the server's log."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Org
from tests.notifications.realtime_support import auth_frame, open_socket, signing_secret, subscribe
from tests.security.support import server_log_tracebacks
from tests.servers import HeraldServer


def _nested(depth: int) -> str:
    return '{"type": "ping", "x": ' + "[" * depth + "]" * depth + "}"


@pytest.fixture
def acme_secret(acme: Org) -> str:
    return signing_secret(acme)


HOSTILE_BEFORE_AUTH = {
    "JSON nested 1,000 deep": _nested(1_000),
    "JSON nested 10,000 deep": _nested(10_000),
    "an object nested 1,000 deep": '{"a":' * 1_000 + "1" + "}" * 1_000,
    "a lone surrogate in subscriber_id": json.dumps(
        {"type": "auth", "subscriber_id": "ada\ud800", "subscriber_hash": "0" * 64, "cursor": None}
    ),
    "a lone surrogate as the type": json.dumps({"type": "\udfff"}),
}


@pytest.mark.parametrize("name", list(HOSTILE_BEFORE_AUTH))
async def test_hostile_frames_before_auth_close_with_4400_and_log_nothing(
    herald_server: HeraldServer, acme: Org, name: str
) -> None:
    before = server_log_tracebacks(herald_server)
    client = await open_socket(herald_server, acme)
    await client.ws.send(HOSTILE_BEFORE_AUTH[name])
    assert await client.closed_with() == 4400, name
    assert server_log_tracebacks(herald_server) == before, name


@pytest.mark.parametrize(
    "proof",
    [
        {"subscriber_hash": "é" * 64},
        {"subscriber_hash": "\ud800" * 64},
        {"token": "eyJhbGciOiJIUzI1NiJ9.é.é"},
        {"token": "\ud800.\ud800.\ud800"},
    ],
)
async def test_non_ascii_proofs_are_refused_with_4401(
    herald_server: HeraldServer, acme: Org, proof: dict[str, str]
) -> None:
    before = server_log_tracebacks(herald_server)
    client = await open_socket(herald_server, acme)
    await client.send({"type": "auth", "subscriber_id": "ada", "cursor": None, **proof})
    assert await client.closed_with() == 4401
    assert server_log_tracebacks(herald_server) == before


async def test_hostile_frames_after_auth_get_an_error_frame_and_the_socket_stays(
    herald_server: HeraldServer, acme: Org, acme_secret: str
) -> None:
    before = server_log_tracebacks(herald_server)
    client, _, _ = await subscribe(herald_server, acme, acme_secret, "ada")
    for text in (
        _nested(1_000),
        _nested(10_000),
        json.dumps({"type": "read", "id": "\ud800"}),
        json.dumps({"type": "read", "id": "é" * 10}),
        json.dumps({"type": "\ud800"}),
        json.dumps({"type": "auth", "subscriber_id": "\ud800", "subscriber_hash": "0" * 64, "cursor": None}),
    ):
        await client.ws.send(text)
        frame = await client.recv()
        assert frame["type"] == "error", (text[:40], frame)
    await client.send({"type": "ping"})
    assert (await client.recv())["type"] == "pong"
    await client.close()
    assert server_log_tracebacks(herald_server) == before


async def test_a_subscriber_with_a_non_ascii_id_authenticates_on_the_socket(
    herald_server: HeraldServer, acme: Org, acme_secret: str
) -> None:
    client = await open_socket(herald_server, acme)
    await client.send(auth_frame(acme_secret, "jürgen-東京"))
    ready = await client.recv_type("ready")
    assert ready["subscriber_id"] == "jürgen-東京"
    await client.close()
