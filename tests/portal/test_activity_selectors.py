"""The activity selectors: newest first, filters, cursor pages, receipts, a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from herald.problems import Problem
from notifications import selectors, services
from notifications.models import InboxItem, Message
from notifications.selectors import ActivityFilter
from tests.conftest import Org
from tests.portal.send_support import portal_send


def send(org: Org, **fields: Any) -> str:
    return portal_send(org, **fields).id


def test_messages_come_newest_first_in_cursor_pages(acme: Org) -> None:
    sent = [send(acme, to=["ann"], title=f"n{i}") for i in range(5)]
    with acme.activate():
        first = selectors.activity_page(filters=ActivityFilter(), cursor=None, limit=2)
        second = selectors.activity_page(filters=ActivityFilter(), cursor=first.next_cursor, limit=2)
        third = selectors.activity_page(filters=ActivityFilter(), cursor=second.next_cursor, limit=2)
    pages = [[a.message.pk for a in p.items] for p in (first, second, third)]
    assert [str(pk) for page in pages for pk in page] == list(reversed(sent))
    assert first.has_more and second.has_more and not third.has_more and third.next_cursor is None


def test_counts_and_first_recipients_show_each_receipt(acme: Org) -> None:
    message_id = send(acme, to=["ann", "ben", "cat"])
    now = timezone.now()
    with acme.activate():
        InboxItem.objects.filter(message_id=message_id, subscriber__external_id__in=["ann", "ben"]).update(
            delivered_at=now
        )
        InboxItem.objects.filter(message_id=message_id, subscriber__external_id="ann").update(seen_at=now, read_at=now)
        InboxItem.objects.filter(message_id=message_id, subscriber__external_id="cat").update(archived_at=now)
        (activity,) = selectors.activity_page(filters=ActivityFilter(), cursor=None, limit=10).items
    assert (activity.recipients, activity.delivered, activity.seen, activity.read, activity.archived) == (3, 2, 1, 1, 1)
    by_id = {item.subscriber.external_id: item for item in activity.first_recipients}
    assert set(by_id) == {"ann", "ben", "cat"}
    assert by_id["ann"].read_at is not None and by_id["ben"].read_at is None and by_id["cat"].delivered_at is None


def test_first_recipients_are_capped_per_message(acme: Org) -> None:
    send(acme, to=[f"s{i}" for i in range(8)])
    send(acme, to=["solo"])
    with acme.activate():
        page = selectors.activity_page(filters=ActivityFilter(), cursor=None, limit=10)
    assert [len(a.first_recipients) for a in page.items] == [1, selectors.ACTIVITY_RECIPIENTS_SHOWN]
    assert page.items[1].recipients == 8


def test_filters_narrow_by_subscriber_category_topic_and_dates(acme: Org) -> None:
    with acme.activate():
        topic, _ = services.topic_upsert(key="deploys", name="Deploys")
        services.topic_subscribers_add(organization_id=acme.organization.pk, topic=topic, external_ids=["ann"])
    to_ann = send(acme, to=["ann"], category="billing")
    to_ben = send(acme, to=["ben"], category="security")
    on_topic = send(acme, topic="deploys")
    old = send(acme, to=["ben"])
    with acme.activate():
        Message.objects.filter(pk=old).update(created_at=timezone.now() - timedelta(days=10))

        def ids(**kw: Any) -> set[str]:
            page = selectors.activity_page(filters=ActivityFilter(**kw), cursor=None, limit=50)
            return {str(a.message.pk) for a in page.items}

        today = timezone.now().date()
        assert ids(subscriber_id="ann") == {to_ann, on_topic}
        assert ids(subscriber_id="nobody") == set()
        assert ids(category="security") == {to_ben}
        assert ids(topic="deploys") == {on_topic}
        assert ids(since=today - timedelta(days=1)) == {to_ann, to_ben, on_topic}
        assert ids(until=today - timedelta(days=5)) == {old}
        assert ids(subscriber_id="ben", until=today) == {to_ben, old}


def test_activity_page_costs_two_queries_whatever_its_size(acme: Org, django_assert_num_queries: Any) -> None:
    for i in range(12):
        send(acme, to=[f"u{i}", f"v{i}", "shared"])
    with acme.activate():
        selectors.activity_page(filters=ActivityFilter(), cursor=None, limit=1)  # sets the search path
        with django_assert_num_queries(2):
            page = selectors.activity_page(filters=ActivityFilter(), cursor=None, limit=10)
            # Touch everything a page renders.
            for activity in page.items:
                assert activity.topic_key is None
                assert [item.subscriber.external_id for item in activity.first_recipients]


def test_a_cursor_from_another_list_is_refused(acme: Org) -> None:
    with acme.activate():
        other = selectors.cursor_encode("inbox", 3)
        with pytest.raises(Problem):
            selectors.activity_page(filters=ActivityFilter(), cursor=other, limit=10)


def test_message_activity_get_knows_only_this_organisations_messages(acme: Org, globex: Org) -> None:
    in_acme = send(acme, to=["ann"])
    with globex.activate():
        assert selectors.message_activity_get(message_id=in_acme) is None
        assert selectors.message_activity_get(message_id="not-a-uuid") is None
    with acme.activate():
        found = selectors.message_activity_get(message_id=in_acme)
    assert found is not None and found.recipients == 1


def test_subscriber_search_matches_id_or_email(acme: Org) -> None:
    with acme.activate():
        services.subscriber_upsert(external_id="user-42", fields={"email": "dana@example.com"})
        services.subscriber_upsert(external_id="user-43", fields={"email": "eli@example.com"})
        services.subscriber_upsert(external_id="robot", fields={})
        by_id = selectors.subscribers_search(query="user-4", cursor=None, limit=10)
        by_email = selectors.subscribers_search(query="DANA@", cursor=None, limit=10)
        everyone = selectors.subscribers_search(query="", cursor=None, limit=2)
    assert [s.external_id for s in by_id.items] == ["user-42", "user-43"]
    assert [s.external_id for s in by_email.items] == ["user-42"]
    assert len(everyone.items) == 2 and everyone.has_more
