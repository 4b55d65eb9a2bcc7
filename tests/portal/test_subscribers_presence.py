"""Open sockets per subscriber, counted across processes through Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from notifications.presence import sockets_open
from tests.conftest import Org
from tests.notifications.realtime_support import run_db, signing_secret, subscribe, subscriber_pk
from tests.servers import HeraldServer


@pytest.fixture(scope="module")
def second_server(django_db_setup: None) -> Iterator[HeraldServer]:
    """Another uvicorn process on the same PostgreSQL and Redis."""
    with HeraldServer() as server:
        yield server


async def wait_count(org: Org, pk: int, expected: int, timeout: float = 6.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    seen = None
    while asyncio.get_running_loop().time() < deadline:
        seen = await asyncio.to_thread(sockets_open, organization_id=org.organization.pk, subscriber_pk=pk)
        if seen == expected:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"expected {expected} open sockets, saw {seen}")


async def test_sockets_on_two_processes_are_counted_and_closing_one_is_seen(
    herald_server: HeraldServer, second_server: HeraldServer, acme: Org, globex: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    pk = await run_db(subscriber_pk, acme, "dora")
    globex_pk = await run_db(subscriber_pk, globex, "dora")
    await wait_count(acme, pk, 0)
    on_a, _, _ = await subscribe(herald_server, acme, secret, "dora")
    on_b, _, _ = await subscribe(second_server, acme, secret, "dora")
    also_a, _, _ = await subscribe(herald_server, acme, secret, "dora")
    await wait_count(acme, pk, 3)
    # Another organisation's subscriber with the same id has no sockets.
    assert await asyncio.to_thread(sockets_open, organization_id=globex.organization.pk, subscriber_pk=globex_pk) == 0
    await on_b.close()
    await also_a.close()
    await wait_count(acme, pk, 1)
    await on_a.close()
    await wait_count(acme, pk, 0)
