"""The plan's concurrent connections: over the cap a new socket closes with 4429, other organisations are
served, a freed place is taken again, and a plan change raises the cap at once. The sockets are recorded
durably (active subscribers, per-minute peaks) and the ledger reads them."""

from __future__ import annotations

import asyncio
import time

from django.utils import timezone

from billing.models import ConnectionSample, SubscriberActivity
from billing.plans import plan_for
from billing.usage import usage_rollup
from tenants.services import organization_plan_change
from tests.conftest import Org
from tests.notifications.realtime_support import Client, auth_frame, open_socket, signing_secret
from tests.servers import HeraldServer

GLOBEX_ORIGIN = "http://app.globex.test"
FREE_CONNECTIONS = plan_for("free").concurrent_connections
assert FREE_CONNECTIONS is not None


async def _authed(server: HeraldServer, org: Org, secret: str, subscriber_id: str, origin: str | None = None) -> Client:
    client = await (open_socket(server, org, origin=origin) if origin else open_socket(server, org))
    await client.send(auth_frame(secret, subscriber_id))
    return client


async def _ready(client: Client) -> bool:
    try:
        await client.recv_type("ready", timeout=10)
    except Exception:  # noqa: BLE001 - closed instead
        return False
    return True


def _wait_for_samples(org: Org, at_least: int) -> int:
    """The recorded peak of the organisation's sockets today, once the recorder wrote it (bounded wait)."""
    deadline = time.monotonic() + 10
    peak = 0
    while time.monotonic() < deadline:
        samples = ConnectionSample.objects.filter(organization=org.organization)
        peak = max([s.peak for s in samples] + [0])
        if peak >= at_least:
            return peak
        time.sleep(0.2)
    return peak


async def test_over_the_plans_connection_cap_a_new_socket_closes_with_4429(
    acme: Org, globex: Org, herald_server: HeraldServer
) -> None:
    from asgiref.sync import sync_to_async

    secret = await sync_to_async(signing_secret)(acme)
    globex_secret = await sync_to_async(signing_secret)(globex)
    clients = await asyncio.gather(*(_authed(herald_server, acme, secret, f"s{i}") for i in range(FREE_CONNECTIONS)))
    try:
        assert all(await asyncio.gather(*(_ready(c) for c in clients)))
        over = await _authed(herald_server, acme, secret, "one-too-many")
        assert await over.closed_with() == 4429
        other = await _authed(herald_server, globex, globex_secret, "ada", GLOBEX_ORIGIN)
        assert await _ready(other)
        await other.close()
        # A place freed is a place to take.
        await clients[0].close()
        clients[0] = await _reconnect(herald_server, acme, secret, "s0")
        assert await (await _authed(herald_server, acme, secret, "still-too-many")).closed_with() == 4429
        # Upgraded: the cap is Pro's at once (the organisation's keys resolve again).
        await sync_to_async(organization_plan_change)(organization=acme.organization, plan="pro")
        upgraded = await _authed(herald_server, acme, secret, "on-pro")
        assert await _ready(upgraded)
        clients.append(upgraded)
        # Durable records: the most sockets at once, and every subscriber that had one (the refused never did).
        peak = await sync_to_async(_wait_for_samples)(acme, FREE_CONNECTIONS + 1)
        assert peak == FREE_CONNECTIONS + 1
        assert await sync_to_async(_active_count)(acme) == FREE_CONNECTIONS + 1
        row = await sync_to_async(usage_rollup)(acme.organization, timezone.now().date())
        assert (row.peak_connections, row.active_subscribers) == (FREE_CONNECTIONS + 1, FREE_CONNECTIONS + 1)
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def _reconnect(server: HeraldServer, org: Org, secret: str, subscriber_id: str) -> Client:
    """A socket of the subscriber once the server has heard of the close that freed a place (bounded)."""
    deadline = time.monotonic() + 10
    while True:
        client = await _authed(server, org, secret, subscriber_id)
        if await _ready(client):
            return client
        assert time.monotonic() < deadline, "the freed place was never given again"


def _active_count(org: Org) -> int:
    deadline = time.monotonic() + 10
    count = 0
    while time.monotonic() < deadline:
        count = SubscriberActivity.objects.filter(organization=org.organization).count()
        if count >= FREE_CONNECTIONS + 1:
            break
        time.sleep(0.2)
    return count
