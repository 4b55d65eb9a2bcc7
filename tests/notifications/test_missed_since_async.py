"""The socket's replay read (delivery.missed_since_async, on the event loop): the subscriber's items after a
cursor in order with their read state, its own organisation's only, and each reset reason."""

from __future__ import annotations

from django.test import override_settings
from django.utils import timezone

from notifications import delivery
from notifications.models import InboxItem
from notifications.sending import run_blocking
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
