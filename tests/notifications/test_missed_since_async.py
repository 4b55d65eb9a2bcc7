"""The socket's replay read (delivery.missed_since_async, on the event loop): the subscriber's items after a
cursor in order with their read state, its own organisation's only, and each reset reason."""

from __future__ import annotations

import asyncio

from django.test import override_settings
from django.utils import timezone

from notifications import delivery
from notifications.models import InboxItem
from notifications.sending import connection_pool, run_blocking
from tests.conftest import Org
from tests.notifications.realtime_support import backdate_messages, message_store, subscriber_pk


def _replay(org: Org, pk: int, cursor: int) -> delivery.Replay:
    return run_blocking(
        delivery.missed_since_async(
            organization_id=org.organization.pk, schema_name=org.schema_name, subscriber_pk=pk, cursor=cursor
        )
    )


def test_replay_gives_the_missed_items_in_order_and_each_reset_reason(acme: Org, globex: Org) -> None:
    pk = subscriber_pk(acme, "ada")
    for i in range(4):
        message_store(acme, to=["ada"] if i != 2 else ["bob"], title=f"m{i}")
    message_store(globex, to=["ada"], title="other organisation")
    with acme.activate():
        InboxItem.objects.filter(subscriber_id=pk, seq=2).update(read_at=timezone.now(), seen_at=timezone.now())
    expected = {0: ["m0", "m1", "m3"], 1: ["m1", "m3"], 3: ["m3"], 4: []}
    for cursor, titles in expected.items():
        replay = _replay(acme, pk, cursor)
        assert replay.reset_reason is None and [item["title"] for item in replay.items] == titles, cursor
        assert (replay.latest_cursor, replay.unread_count) == (4, 2), cursor
    first = _replay(acme, pk, 0)
    assert [item["read"] for item in first.items] == [False, True, False]
    assert [item["seq"] for item in first.items] == [1, 2, 4]
    assert _replay(acme, pk, 99).reset_reason == "unknown_cursor"
    with override_settings(HERALD_WS_REPLAY_LIMIT=2):
        assert _replay(acme, pk, 0).reset_reason == "too_many"
    backdate_messages(acme, days=400)
    assert _replay(acme, pk, 0).reset_reason == "expired"


def test_replays_at_once_leave_the_send_engine_its_connections(acme: Org) -> None:
    """A thousand sockets catching up together (the channel layer back, or another process's clients
    reconnecting here) must not queue sends behind every replay: the pool serves its waiters in turn, and each
    replay held one of its few connections (the soak's sends were answered in up to 4 s after a Redis restart)."""
    pk = subscriber_pk(acme, "ada")
    for i in range(20):
        message_store(acme, to=["ada"], title=f"m{i}")

    async def scenario() -> tuple[int, int]:
        pool = await connection_pool()
        await pool.wait()  # its connections all open: none is still being made when the replays ask
        done = 0

        async def replay() -> None:
            nonlocal done
            await delivery.missed_since_async(
                organization_id=acme.organization.pk, schema_name=acme.schema_name, subscriber_pk=pk, cursor=0
            )
            done += 1

        tasks = [asyncio.create_task(replay()) for _ in range(60)]
        await asyncio.sleep(0.01)  # every replay has asked for its turn
        asked_at = done
        async with pool.connection() as conn:  # a send's turn at the pool
            await conn.execute("SELECT 1")
        waited_for = done - asked_at  # replays that finished while the send waited for a connection
        await asyncio.gather(*tasks)
        return waited_for, done

    waited_for, total = run_blocking(scenario())
    assert total == 60
    assert waited_for <= 10, f"the send waited for {waited_for} of 60 replays"
