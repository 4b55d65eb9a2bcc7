"""Socket refusals explain themselves: a problem document on the refused handshake, a reason on each close."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect

from tenants.keys import key_hash
from tenants.models import ApiKey
from tenants.services import api_key_revoke
from tests.conftest import ALLOWED_ORIGIN, Org
from tests.notifications.realtime_support import (
    Client,
    auth_frame,
    open_socket,
    run_db,
    signing_secret,
    subscribe,
    ws_url,
)
from tests.servers import HeraldServer


async def refused(url: str, origin: str | None) -> tuple[int, str, dict[str, Any]]:
    with pytest.raises(websockets.InvalidStatus) as caught:
        await connect(url, origin=origin, open_timeout=5)  # type: ignore[arg-type]
    response = caught.value.response
    return response.status_code, response.headers["Content-Type"], json.loads(response.body)


async def test_a_refused_handshake_says_why_in_a_problem_document(herald_server: HeraldServer, acme: Org) -> None:
    key = acme.publishable_key
    broken = key[:-1] + ("y" if key.endswith("x") else "x")  # its last character changed, whatever it was
    cases = [
        (ws_url(herald_server, acme), "http://evil.test", "origin-not-allowed", "'http://evil.test' is not on"),
        (ws_url(herald_server, key=broken), ALLOWED_ORIGIN, "invalid-api-key", "?pk="),
        (ws_url(herald_server, key=acme.secret_key), ALLOWED_ORIGIN, "secret-key-not-allowed", "pk_live_"),
        (ws_url(herald_server, key=""), ALLOWED_ORIGIN, "authentication-required", "/v1/ws?pk="),
        (f"{herald_server.ws_url}/ws/notifications/", ALLOWED_ORIGIN, "not-found", "/v1/ws?pk="),
    ]
    for url, origin, slug, words in cases:
        status, content_type, problem = await refused(url, origin)
        assert (status, content_type) == (403, "application/problem+json"), url
        assert problem["type"] == f"https://herald.dev/problems/{slug}" and problem["status"] == 403
        assert words in problem["detail"], (slug, problem["detail"])


async def test_a_client_without_origin_is_not_a_browser_and_still_proves_its_subscriber(
    herald_server: HeraldServer, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    ws = await connect(ws_url(herald_server, acme), open_timeout=5)
    client = Client(ws)
    await client.send(auth_frame(secret, "mobile"))
    assert (await client.recv_type("ready"))["subscriber_id"] == "mobile"
    await client.close()
    forged = Client(await connect(ws_url(herald_server, acme), open_timeout=5))
    await forged.send({"type": "auth", "subscriber_id": "mobile", "subscriber_hash": "0" * 64, "cursor": None})
    assert await forged.closed_with() == 4401


async def _reason(client: Client, code: int) -> str:
    assert await client.closed_with() == code
    return str(client.ws.close_reason)


async def test_close_frames_carry_a_short_reason(quick_server: HeraldServer, acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    early = await open_socket(quick_server, acme)
    await early.ws.send('{"type": "read", "id": "x"}')
    assert "the first frame must be" in await _reason(early, 4400)

    forged = await open_socket(quick_server, acme)
    await forged.send({"type": "auth", "subscriber_id": "ada", "subscriber_hash": "0" * 64, "cursor": None})
    assert "subscriber proof refused" in await _reason(forged, 4401)

    silent = await open_socket(quick_server, acme)
    assert "no auth frame in time" in await _reason(silent, 4408)

    flooder, _, _ = await subscribe(quick_server, acme, secret, "flooder")
    for _ in range(200):
        try:
            await flooder.ws.send(json.dumps({"type": "ping"}))
        except websockets.ConnectionClosed:
            break
    assert "rate limited" in await _reason(flooder, 4429)


async def test_a_revoked_keys_sockets_close_saying_so(herald_server: HeraldServer, acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    client, _, _ = await subscribe(herald_server, acme, secret, "ada")

    def revoke() -> None:
        api_key_revoke(api_key=ApiKey.objects.get(key_hash=key_hash(acme.publishable_key)))

    await run_db(revoke)
    assert await _reason(client, 4403) == "publishable key revoked"
    await asyncio.sleep(0)
