"""Delivery receipts: delivered_at is set, in batches, when a frame reaches a subscriber's socket."""

from __future__ import annotations

import asyncio
from datetime import datetime

from django_tenants.utils import tenant_context

from notifications.models import InboxItem
from tests.conftest import Org
from tests.notifications.realtime_support import (
    api_preferences_set,
    api_send,
    run_db,
    signing_secret,
    subscribe,
    subscriber_pk,
)
from tests.servers import HeraldServer


def delivered_at(org: Org, message_id: str, external_id: str) -> datetime | None:
    with tenant_context(org.organization):
        item = InboxItem.objects.filter(message_id=message_id, subscriber__external_id=external_id).first()
        return item.delivered_at if item is not None else None


async def wait_delivered(org: Org, message_id: str, external_id: str, timeout: float = 5.0) -> datetime:
    """delivered_at once the server's flusher wrote it (bounded wait)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = await run_db(delivered_at, org, message_id, external_id)
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{external_id} has no delivery receipt for {message_id} after {timeout} s")


async def test_live_frame_sets_delivered_for_the_connected_subscriber_only(
    herald_server: HeraldServer, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    await run_db(subscriber_pk, acme, "offline-olga")
    alice, _, _ = await subscribe(herald_server, acme, secret, "alice")
    sent = await api_send(herald_server, acme, to=["alice", "offline-olga"], title="Receipts")
    assert (await alice.recv_type("notification"))["notification"]["id"] == sent["id"]
    at = await wait_delivered(acme, sent["id"], "alice")
    assert at.tzinfo is not None
    # The flusher has run for this batch: the offline recipient's row would have been in it.
    await asyncio.sleep(1.0)
    assert await run_db(delivered_at, acme, sent["id"], "offline-olga") is None
    await alice.close()


async def test_replay_sets_delivered_and_a_later_socket_keeps_the_first_time(
    herald_server: HeraldServer, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    first, ready, _ = await subscribe(herald_server, acme, secret, "bob")
    cursor = ready["cursor"]
    await first.close()
    sent = await api_send(herald_server, acme, to=["bob"], title="While away")
    await asyncio.sleep(1.0)
    assert await run_db(delivered_at, acme, sent["id"], "bob") is None
    again, _, before = await subscribe(herald_server, acme, secret, "bob", cursor=cursor)
    assert [f["notification"]["id"] for f in before if f["type"] == "notification"] == [sent["id"]]
    at = await wait_delivered(acme, sent["id"], "bob")
    await again.close()
    # A second catch-up writes the frame again but keeps the first receipt.
    third, _, before = await subscribe(herald_server, acme, secret, "bob", cursor=cursor)
    assert [f["notification"]["id"] for f in before if f["type"] == "notification"] == [sent["id"]]
    await asyncio.sleep(1.0)
    assert await run_db(delivered_at, acme, sent["id"], "bob") == at
    await third.close()


async def test_receipts_stay_inside_their_organisation(herald_server: HeraldServer, acme: Org, globex: Org) -> None:
    acme_secret = await run_db(signing_secret, acme)
    await run_db(subscriber_pk, globex, "carol")
    carol, _, _ = await subscribe(herald_server, acme, acme_secret, "carol")
    # The same subscriber id (and so likely the same subscriber pk) has a row in Globex too.
    globex_sent = await api_send(herald_server, globex, to=["carol"], title="Globex")
    acme_sent = await api_send(herald_server, acme, to=["carol"], title="Acme")
    assert (await carol.recv_type("notification"))["notification"]["id"] == acme_sent["id"]
    await wait_delivered(acme, acme_sent["id"], "carol")
    await asyncio.sleep(1.0)
    assert await run_db(delivered_at, globex, globex_sent["id"], "carol") is None
    await carol.close()


async def test_a_broadcast_is_delivered_to_connected_sockets_but_not_to_an_opted_out_one(
    herald_server: HeraldServer, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    # Opted out before connecting: the socket's session starts with the opt-out (no race with a live change).
    await api_preferences_set(herald_server, acme, secret, "olive", {"promo": False})
    pat, _, _ = await subscribe(herald_server, acme, secret, "pat")
    olive, _, _ = await subscribe(herald_server, acme, secret, "olive")
    sent = await api_send(herald_server, acme, broadcast=True, category="promo", title="Sale")
    assert (await pat.recv_type("notification"))["notification"]["id"] == sent["id"]
    await wait_delivered(acme, sent["id"], "pat")
    assert await olive.nothing_within(1.0)
    assert await run_db(delivered_at, acme, sent["id"], "olive") is None
    await pat.close()
    await olive.close()
