"""Regression: consumers of different organisations share ONE database thread and connection.

`database_sync_to_async` runs every consumer of a process on one thread, so a
tenant activated by one call can be switched by another consumer before the
next. Herald's consumer only calls functions that activate their tenant
themselves; these tests interleave two organisations' consumers with a third
party that keeps switching the shared connection to the wrong schema.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.db import connection, connections
from django_tenants.utils import tenant_context

from herald.asgi import application
from notifications import delivery
from notifications.models import Message
from tests.conftest import ALLOWED_ORIGIN, Org, make_org
from tests.notifications.realtime_support import auth_frame, message_store, run_db, signing_secret, subscriber_pk


@pytest.fixture(autouse=True)
async def _close_shared_connection() -> AsyncIterator[None]:
    """The shared database thread outlives the test: close its connection so the test database can be dropped, and
    put it back on the public schema, where these tests' deliberate switches would otherwise leave the next test's
    calls on that thread (a closed connection keeps its schema and sets it again when it reconnects)."""
    yield

    @database_sync_to_async
    def reset() -> None:
        connection.set_schema_to_public()
        connections.close_all()

    await reset()


def seed(org: Org, subscriber_id: str, count: int) -> set[str]:
    return {message_store(org, to=[subscriber_id], title=f"{org.organization.slug} {i}")["id"] for i in range(count)}


@database_sync_to_async
def switch_shared_connection_to(org: Org) -> None:
    """What another consumer could leave behind on the shared connection."""
    connection.set_tenant(org.organization)


@database_sync_to_async
def naive_read_all_titles() -> set[str]:
    """The unsafe pattern: trusting whatever schema the shared connection has."""
    return set(Message.objects.values_list("title", flat=True))


async def test_naive_reads_on_the_shared_connection_do_see_the_other_tenant(acme: Org, globex: Org) -> None:
    # The hazard is real: this is what the consumer must never do.
    await run_db(seed, globex, "g", 1)
    await switch_shared_connection_to(globex)
    titles = await naive_read_all_titles()
    assert titles and all(t.startswith(globex.organization.slug) for t in titles)


async def test_interleaved_delivery_calls_of_two_organisations_never_mix_rows(acme: Org, globex: Org) -> None:
    acme_ids, globex_ids = await run_db(seed, acme, "same-id", 5), await run_db(seed, globex, "same-id", 7)
    acme_pk, globex_pk = await run_db(subscriber_pk, acme, "same-id"), await run_db(subscriber_pk, globex, "same-id")

    async def replay(org: Org, pk: int) -> tuple[Org, set[str], int]:
        # The replay names its schema in its SQL (on the send pool); the count runs on the shared connection.
        result = await delivery.missed_since_async(
            organization_id=org.organization.pk, schema_name=org.organization.schema_name, subscriber_pk=pk, cursor=0
        )
        count = await database_sync_to_async(delivery.unread_count)(organization=org.organization, subscriber_pk=pk)
        return org, {item["id"] for item in result.items}, count

    calls: list[Any] = []
    for _ in range(20):
        calls += [replay(acme, acme_pk), switch_shared_connection_to(globex), replay(globex, globex_pk)]
        calls += [switch_shared_connection_to(acme)]
    results = [r for r in await asyncio.gather(*calls) if r is not None]
    assert len(results) == 40
    for org, ids, count in results:
        expected = acme_ids if org is acme else globex_ids
        assert ids == expected and count == len(expected)


async def test_two_consumers_interleaving_replays_see_only_their_own_rows(acme: Org) -> None:
    other = await run_db(make_org, "Other", origins=[ALLOWED_ORIGIN])
    acme_ids, other_ids = await run_db(seed, acme, "shared", 6), await run_db(seed, other, "shared", 9)
    secrets = {
        acme.organization.pk: await run_db(signing_secret, acme),
        other.organization.pk: await run_db(signing_secret, other),
    }

    async def replay(org: Org) -> list[str]:
        # channels.testing needs daphne; asgiref's communicator drives the same ASGI app.
        scope = {
            "type": "websocket",
            "path": "/v1/ws",
            "raw_path": b"/v1/ws",
            "query_string": f"pk={org.publishable_key}".encode(),
            "headers": [(b"origin", ALLOWED_ORIGIN.encode())],
            "subprotocols": [],
        }
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "websocket.connect"})
        assert (await communicator.receive_output(10))["type"] == "websocket.accept"
        frame_in = json.dumps(auth_frame(secrets[org.organization.pk], "shared", cursor=0))
        await communicator.send_input({"type": "websocket.receive", "text": frame_in})
        ids = []
        while True:
            frame = json.loads((await communicator.receive_output(10))["text"])
            if frame["type"] == "ready":
                break
            ids.append(frame["notification"]["id"])
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(5)
        return ids

    async def meddle() -> None:
        for _ in range(30):
            await switch_shared_connection_to(other)
            await asyncio.sleep(0)
            await switch_shared_connection_to(acme)

    results = await asyncio.gather(replay(acme), replay(other), meddle(), replay(other), replay(acme), meddle())
    assert set(results[0]) == acme_ids and len(results[0]) == 6
    assert set(results[4]) == acme_ids
    assert set(results[1]) == other_ids and set(results[3]) == other_ids

    def leaked() -> bool:
        with tenant_context(acme.organization):
            return Message.objects.filter(id__in=list(other_ids)).exists()

    assert not await run_db(leaked)
