"""Socket caps (notifications.socket_limits): per publishable key, per subscriber, unauthenticated per key and
address, and new connections per address. Over a cap: 4429; other organisations' sockets are unaffected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import websockets
from websockets.asyncio.client import connect

from tests.conftest import Org
from tests.notifications.realtime_support import Client, auth_frame, open_socket, signing_secret, ws_url
from tests.servers import HeraldServer

GLOBEX_ORIGIN = "http://app.globex.test"


@pytest.fixture(scope="module")
def capped_server(django_db_setup: None) -> Iterator[HeraldServer]:
    env = {
        "HERALD_WS_MAX_PER_KEY": "6",
        "HERALD_WS_MAX_PER_SUBSCRIBER": "2",
        "HERALD_WS_MAX_UNAUTHENTICATED_PER_CLIENT": "3",
        "HERALD_WS_CONNECT_RATE": "1000",
        "HERALD_WS_CONNECT_BURST": "1000",
    }
    with HeraldServer(env=env) as server:
        yield server


@pytest.fixture(scope="module")
def slow_connect_server(django_db_setup: None) -> Iterator[HeraldServer]:
    with HeraldServer(env={"HERALD_WS_CONNECT_RATE": "1", "HERALD_WS_CONNECT_BURST": "4"}) as server:
        yield server


@pytest.fixture
def secrets(acme: Org, globex: Org) -> dict[str, str]:
    return {"acme": signing_secret(acme), "globex": signing_secret(globex)}


async def _authed(server: HeraldServer, org: Org, secret: str, subscriber_id: str, origin: str | None = None) -> Client:
    client = await (open_socket(server, org, origin=origin) if origin else open_socket(server, org))
    await client.send(auth_frame(secret, subscriber_id))
    return client


async def test_a_subscriber_over_its_socket_cap_gets_4429_and_others_are_served(
    capped_server: HeraldServer, acme: Org, globex: Org, secrets: dict[str, str]
) -> None:
    first = await _authed(capped_server, acme, secrets["acme"], "ada")
    second = await _authed(capped_server, acme, secrets["acme"], "ada")
    for client in (first, second):
        assert (await client.recv_type("ready"))["subscriber_id"] == "ada"
    third = await _authed(capped_server, acme, secrets["acme"], "ada")
    assert await third.closed_with() == 4429
    bob = await _authed(capped_server, acme, secrets["acme"], "bob")
    assert (await bob.recv_type("ready"))["subscriber_id"] == "bob"
    other = await _authed(capped_server, globex, secrets["globex"], "ada", GLOBEX_ORIGIN)
    assert (await other.recv_type("ready"))["subscriber_id"] == "ada"
    await first.close()
    # A closed socket frees its place.
    again = await _authed(capped_server, acme, secrets["acme"], "ada")
    assert (await again.recv_type("ready"))["subscriber_id"] == "ada"
    for client in (second, bob, other, again):
        await client.close()


async def test_unauthenticated_sockets_are_capped_per_key_and_address(
    capped_server: HeraldServer, acme: Org, globex: Org, secrets: dict[str, str]
) -> None:
    silent = [await open_socket(capped_server, acme) for _ in range(3)]
    over = await open_socket(capped_server, acme)
    assert await over.closed_with() == 4429
    other = await _authed(capped_server, globex, secrets["globex"], "ada", GLOBEX_ORIGIN)
    assert (await other.recv_type("ready"))["type"] == "ready"
    # One of the silent ones authenticates: a place for an unauthenticated socket is free again.
    await silent[0].send(auth_frame(secrets["acme"], "ada"))
    await silent[0].recv_type("ready")
    late = await open_socket(capped_server, acme)
    await late.send({"type": "ping"})
    assert (await late.recv())["type"] == "pong"
    for client in (*silent, other, late):
        await client.close()


async def test_sockets_per_publishable_key_are_capped_and_other_keys_are_served(
    capped_server: HeraldServer, acme: Org, globex: Org, secrets: dict[str, str]
) -> None:
    clients = []
    for i in range(6):
        # Each one ready before the next opens: six auths in flight at once would be six unauthenticated
        # sockets from one address, over that cap (3) whenever auth is slower than the opening.
        client = await _authed(capped_server, acme, secrets["acme"], f"user-{i}")
        await client.recv_type("ready")
        clients.append(client)
    over = await open_socket(capped_server, acme)
    assert await over.closed_with() == 4429
    other = await _authed(capped_server, globex, secrets["globex"], "ada", GLOBEX_ORIGIN)
    assert (await other.recv_type("ready"))["type"] == "ready"
    for client in (*clients, other):
        await client.close()


async def test_new_connections_per_address_are_rate_limited(slow_connect_server: HeraldServer, acme: Org) -> None:
    codes = []
    for _ in range(8):  # a burst of 4, refilled at 1/s
        ws = await connect(ws_url(slow_connect_server, acme), origin="http://app.acme.test", open_timeout=10)  # type: ignore[arg-type]
        client = Client(ws)
        try:
            await client.send({"type": "ping"})
            codes.append((await client.recv(5))["type"])
        except websockets.ConnectionClosed:
            codes.append(str(ws.close_code))
        await client.close()
    assert codes[:3] == ["pong"] * 3 and "4429" in codes, codes
