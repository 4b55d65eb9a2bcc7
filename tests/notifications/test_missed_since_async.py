"""The socket's replay read on the event loop (delivery.missed_since_async) answers as the sync missed_since does:
items in order with their read state, and each reset reason."""

from __future__ import annotations

from django.test import override_settings
from django.utils import timezone

from notifications import delivery
from notifications.models import InboxItem
from notifications.sending import run_blocking
from tests.conftest import Org
from tests.notifications.realtime_support import backdate_messages, message_store, subscriber_pk


def _both(org: Org, pk: int, cursor: int) -> tuple[delivery.Replay, delivery.Replay]:
    sync = delivery.missed_since(organization=org.organization, subscriber_pk=pk, cursor=cursor)
    loop = run_blocking(
        delivery.missed_since_async(
            organization_id=org.organization.pk, schema_name=org.schema_name, subscriber_pk=pk, cursor=cursor
        )
    )
    return sync, loop


def test_replay_on_the_loop_matches_the_sync_replay(acme: Org, globex: Org) -> None:
    pk = subscriber_pk(acme, "ada")
    for i in range(4):
        message_store(acme, to=["ada"] if i != 2 else ["bob"], title=f"m{i}")
    message_store(globex, to=["ada"], title="other organisation")
    with acme.activate():
        InboxItem.objects.filter(subscriber_id=pk, seq=2).update(read_at=timezone.now(), seen_at=timezone.now())
    for cursor in (0, 1, 3, 4, 99):
        sync, loop = _both(acme, pk, cursor)
        assert loop == sync, cursor
    sync, _ = _both(acme, pk, 0)
    assert [item["title"] for item in sync.items] == ["m0", "m1", "m3"] and sync.items[1]["read"]
    assert _both(acme, pk, 99)[1].reset_reason == "unknown_cursor"
    with override_settings(HERALD_WS_REPLAY_LIMIT=2):
        assert _both(acme, pk, 0)[1].reset_reason == "too_many"
    backdate_messages(acme, days=400)
    sync, loop = _both(acme, pk, 0)
    assert loop == sync and loop.reset_reason == "expired"
