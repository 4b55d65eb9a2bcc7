"""How new messages become channel-layer events: per subscriber, per audience, or bundled."""

from __future__ import annotations

from typing import Any

from notifications.groups import organization_group, subscriber_group, topic_group
from notifications.realtime import BUNDLE_FROM, BUNDLE_MAX, messages_events


def _named(number: int, pks: list[int]) -> dict[str, Any]:
    return {"notification": {"id": str(number), "seq": number}, "audience": "subscribers", "subscriber_pks": pks}


def test_a_few_named_messages_go_to_each_subscriber_group() -> None:
    pairs = messages_events(7, [_named(1, [10]), _named(2, [11, 12])])
    assert [group for group, _ in pairs] == [subscriber_group(7, 10), subscriber_group(7, 11), subscriber_group(7, 12)]
    assert all(event["type"] == "notification.new" for _, event in pairs)


def test_many_named_messages_are_bundled_on_the_organisation_group_in_order() -> None:
    messages = [_named(n, [100 + n]) for n in range(BUNDLE_FROM + 1)]
    topic = {"notification": {"id": "t", "seq": 99}, "audience": "topic", "topic_pk": 5, "subscriber_pks": None}
    broadcast = {"notification": {"id": "b", "seq": 98}, "audience": "broadcast", "subscriber_pks": None}
    pairs = messages_events(7, [*messages, topic, broadcast])
    groups = [group for group, _ in pairs]
    assert groups == [topic_group(7, 5), organization_group(7), organization_group(7)]
    bundle = pairs[-1][1]
    assert bundle["type"] == "notification.batch"
    assert [item["notification"]["id"] for item in bundle["items"]] == [str(n) for n in range(BUNDLE_FROM + 1)]
    assert bundle["items"][3]["subscriber_pks"] == [103] and pairs[1][1]["type"] == "notification.new"


def test_bundles_hold_at_most_bundle_max_messages() -> None:
    pairs = messages_events(3, [_named(n, [n]) for n in range(BUNDLE_MAX + 1)])
    assert [len(event["items"]) for _, event in pairs] == [BUNDLE_MAX, 1]
    assert {group for group, _ in pairs} == {organization_group(3)}
