"""End to end: real uvicorn processes, real Redis and PostgreSQL, `websockets` clients."""

from __future__ import annotations

import asyncio

from tests.conftest import Org
from tests.notifications.realtime_support import (
    api_call,
    api_preferences_set,
    api_send,
    api_topic_add,
    backdate_messages,
    run_db,
    signing_secret,
    subscribe,
    subscriber_pk,
)
from tests.servers import HeraldServer


async def test_notification_reaches_only_its_subscribers_socket(
    herald_server: HeraldServer, acme: Org, globex: Org
) -> None:
    acme_secret, globex_secret = (
        await run_db(signing_secret, acme),
        await run_db(signing_secret, globex),
    )
    alice, ready, _ = await subscribe(herald_server, acme, acme_secret, "alice")
    bob, _, _ = await subscribe(herald_server, acme, acme_secret, "bob")
    # Same subscriber id in another organisation: a different subscriber altogether.
    globex_alice, _, _ = await subscribe(herald_server, globex, globex_secret, "alice", origin="http://app.globex.test")
    assert ready["v"] == 1 and ready["subscriber_id"] == "alice" and ready["unread_count"] == 0

    sent = await api_send(herald_server, acme, to=["alice"], title="For Alice")
    frame = await alice.recv_type("notification")
    assert frame["notification"]["id"] == sent["id"] and frame["notification"]["title"] == "For Alice"
    assert frame["cursor"] == sent["seq"] and frame["notification"]["read"] is False
    assert await bob.nothing_within(0.5)
    assert await globex_alice.nothing_within(0.1)
    for client in (alice, bob, globex_alice):
        await client.close()


async def test_two_processes_deliver_across_each_other(
    herald_server: HeraldServer, quick_server: HeraldServer, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    on_a, _, _ = await subscribe(herald_server, acme, secret, "carol")
    on_b, _, _ = await subscribe(quick_server, acme, secret, "carol")
    sent = await api_send(herald_server, acme, to=["carol"])
    assert (await on_a.recv_type("notification"))["notification"]["id"] == sent["id"]
    assert (await on_b.recv_type("notification"))["notification"]["id"] == sent["id"]
    # Read on process A: process B's socket hears it through the subscriber's group.
    await on_a.send({"type": "read", "id": sent["id"]})
    update = await on_b.recv_type("update")
    assert update["notification"]["id"] == sent["id"] and update["notification"]["read_at"] is not None
    assert (await on_b.recv_type("unread_count"))["count"] == 0
    assert (await on_a.recv_type("update"))["notification"]["id"] == sent["id"]
    await on_a.close()
    await on_b.close()


async def test_reconnect_with_cursor_replays_exactly_the_missed_50_in_order(
    herald_server: HeraldServer, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    client, _, _ = await subscribe(herald_server, acme, secret, "dave")
    first = await api_send(herald_server, acme, to=["dave"], title="seen")
    cursor = (await client.recv_type("notification"))["cursor"]
    assert cursor == first["seq"]
    await client.close()

    missed = []
    for i in range(50):
        missed.append(await api_send(herald_server, acme, to=["dave"], title=f"missed {i}"))
        if i % 10 == 0:  # other subscribers' messages interleave in the organisation's sequence
            await api_send(herald_server, acme, to=["erin"], title="not dave's")

    client, ready, replayed = await subscribe(herald_server, acme, secret, "dave", cursor=cursor)
    assert [f["notification"]["id"] for f in replayed] == [m["id"] for m in missed]
    assert [f["cursor"] for f in replayed] == sorted(f["cursor"] for f in replayed)
    assert all(f["type"] == "notification" for f in replayed)
    assert ready["cursor"] == missed[-1]["seq"] and ready["unread_count"] == 51
    # Then it streams.
    live = await api_send(herald_server, acme, to=["dave"], title="live")
    assert (await client.recv_type("notification"))["notification"]["id"] == live["id"]
    await client.close()


async def test_cursor_ahead_or_past_retention_gets_a_reset(herald_server: HeraldServer, acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    sent = await api_send(herald_server, acme, to=["frank"])
    await api_send(herald_server, acme, to=["frank"])
    client, ready, before = await subscribe(herald_server, acme, secret, "frank", cursor=10**9)
    assert [f["type"] for f in before] == ["reset"] and before[0]["reason"] == "unknown_cursor"
    assert before[0]["cursor"] == ready["cursor"] == sent["seq"] + 1
    await client.close()

    await run_db(backdate_messages, acme, days=365)
    client, ready, before = await subscribe(herald_server, acme, secret, "frank", cursor=sent["seq"] - 1)
    assert [f["type"] for f in before] == ["reset"] and before[0]["reason"] == "expired"
    await client.close()


async def test_read_state_syncs_across_a_subscribers_connections(herald_server: HeraldServer, acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    tab1, _, _ = await subscribe(herald_server, acme, secret, "gina")
    tab2, _, _ = await subscribe(herald_server, acme, secret, "gina")
    other, _, _ = await subscribe(herald_server, acme, secret, "hank")
    one = await api_send(herald_server, acme, to=["gina"])
    two = await api_send(herald_server, acme, to=["gina"])
    for tab in (tab1, tab2):
        await tab.recv_type("notification")
        await tab.recv_type("notification")

    await tab1.send({"type": "read", "id": one["id"]})
    for tab in (tab1, tab2):
        update = await tab.recv_type("update")
        assert update["notification"]["id"] == one["id"] and update["notification"]["read_at"]
        assert (await tab.recv_type("unread_count"))["count"] == 1
    await tab2.send({"type": "unread", "id": one["id"]})
    assert (await tab1.recv_type("update"))["notification"]["read_at"] is None
    assert (await tab1.recv_type("unread_count"))["count"] == 2
    await tab2.send({"type": "archive", "id": two["id"]})
    assert (await tab1.recv_type("update"))["notification"]["archived_at"] is not None
    assert (await tab1.recv_type("unread_count"))["count"] == 1
    await tab1.send({"type": "read_all"})
    update = await tab2.recv_type("update")
    while "all_read" not in update:  # tab2 first hears its own unread and archive
        update = await tab2.recv_type("update")
    assert update["all_read"] is True and update["read_at"]
    assert (await tab2.recv_type("unread_count"))["count"] == 0
    # Unknown ids and types are refused with an error frame; the socket stays open.
    await tab1.send({"type": "read", "id": "00000000-0000-0000-0000-000000000000"})
    assert (await tab1.recv_type("error"))["code"] == "not_found"
    await tab1.send({"type": "shout"})
    assert (await tab1.recv_type("error"))["code"] == "unknown_type"
    await tab1.send({"type": "ping"})
    assert (await tab1.recv_type("pong"))["type"] == "pong"
    assert await other.nothing_within(0.3)
    for client in (tab1, tab2, other):
        await client.close()


async def test_broadcast_and_topic_honour_opt_outs_and_live_topic_joins(herald_server: HeraldServer, acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    ivy, _, _ = await subscribe(herald_server, acme, secret, "ivy")
    jack, _, _ = await subscribe(herald_server, acme, secret, "jack")

    # Jack opts out after connecting: the API tells his live sockets (preferences.changed).
    await api_preferences_set(herald_server, acme, secret, "jack", {"marketing": False})
    await asyncio.sleep(0.2)

    promo = await api_send(herald_server, acme, broadcast=True, category="marketing")
    news = await api_send(herald_server, acme, broadcast=True, category="news")
    assert (await ivy.recv_type("notification"))["notification"]["id"] == promo["id"]
    assert (await ivy.recv_type("notification"))["notification"]["id"] == news["id"]
    assert (await jack.recv_type("notification"))["notification"]["id"] == news["id"]

    # Topic membership changes reach live sockets without a reconnect.
    await api_topic_add(herald_server, acme, "releases", ["jack"])
    await asyncio.sleep(0.3)
    release = await api_send(herald_server, acme, topic="releases", category="news")
    assert (await jack.recv_type("notification"))["notification"]["id"] == release["id"]
    assert await ivy.nothing_within(0.3)
    await ivy.close()
    await jack.close()


async def test_a_batch_to_named_subscribers_is_one_publish_and_reaches_each_socket(
    herald_server: HeraldServer, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    names = [f"batch-{i}" for i in range(10)]
    sockets = {name: (await subscribe(herald_server, acme, secret, name))[0] for name in names}
    bystander, _, _ = await subscribe(herald_server, acme, secret, "bystander")
    items = [{"to": [name], "title": f"for {name}"} for name in names]
    items.append({"to": ["batch-0", "batch-1"], "title": "for two"})
    answer = await api_call(herald_server, acme, "POST", "/v1/notifications/batch", {"notifications": items})
    ids = [result["id"] for result in answer["results"]]
    assert all(result["status"] == 202 for result in answer["results"])
    for index, name in enumerate(names):
        frame = await sockets[name].recv_type("notification")
        assert frame["notification"]["id"] == ids[index] and frame["notification"]["title"] == f"for {name}"
    for name in ("batch-0", "batch-1"):
        assert (await sockets[name].recv_type("notification"))["notification"]["id"] == ids[-1]
    for name in names:
        assert await sockets[name].nothing_within(0.05)
    assert await bystander.nothing_within(0.3)
    for client in [*sockets.values(), bystander]:
        await client.close()


async def test_a_new_subscribers_first_sockets_opened_together_share_one_subscriber(
    herald_server: HeraldServer, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    opened = await asyncio.gather(*(subscribe(herald_server, acme, secret, "newcomer") for _ in range(6)))
    assert all(ready["subscriber_id"] == "newcomer" and ready["unread_count"] == 0 for _, ready, _ in opened)
    pk = await run_db(subscriber_pk, acme, "newcomer")  # .get(): exactly one row
    sent = await api_send(herald_server, acme, to=["newcomer"])
    assert sent["recipients"] == 1
    for client, _, _ in opened:
        assert (await client.recv_type("notification"))["notification"]["id"] == sent["id"]
        await client.close()
    assert pk > 0
