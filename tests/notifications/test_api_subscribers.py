"""Subscribers and topics over the server API: upsert, read, erase, lists with cursors."""

from __future__ import annotations

import pytest

from notifications.models import InboxItem, Preference, Subscriber, TopicSubscription
from tests.conftest import Org
from tests.notifications.api_support import problem_type, server_api, widget_api


def test_put_creates_then_updates_only_given_fields(acme: Org) -> None:
    api = server_api(acme)
    created = api.put("/v1/subscribers/user-1", {"name": "Ada", "email": "ada@example.com", "data": {"plan": "pro"}})
    assert created.status_code == 200, created.content
    assert created.json()["id"] == "user-1" and created.json()["name"] == "Ada"
    updated = api.put("/v1/subscribers/user-1", {"locale": "fr-FR"})
    body = updated.json()
    assert (body["name"], body["email"], body["locale"], body["data"]) == (
        "Ada",
        "ada@example.com",
        "fr-FR",
        {"plan": "pro"},
    )
    assert api.get("/v1/subscribers/user-1").json() == body
    with acme.activate():
        assert Subscriber.objects.count() == 1


@pytest.mark.parametrize(
    "body",
    [{"email": "not-an-email"}, {"name": "x" * 256}, {"unknown": 1}, {"data": "text"}, {"locale": "en US"}],
)
def test_put_validates(acme: Org, body: dict) -> None:
    response = server_api(acme).put("/v1/subscribers/u", body)
    assert response.status_code == 422 and problem_type(response) == "validation-error"


def test_get_unknown_subscriber_is_404(acme: Org) -> None:
    response = server_api(acme).get("/v1/subscribers/nobody")
    assert response.status_code == 404 and problem_type(response) == "not-found"


def test_delete_erases_subscriber_inbox_topics_and_preferences(acme: Org) -> None:
    api = server_api(acme)
    api.put("/v1/topics/news", {})
    api.post("/v1/topics/news/subscribers", {"subscriber_ids": ["gone", "stays"]})
    api.post("/v1/notifications", {"to": ["gone", "stays"], "title": "x"})
    with acme.activate():
        Preference.objects.create(subscriber=Subscriber.objects.get(external_id="gone"), category="c", enabled=False)
    assert api.delete("/v1/subscribers/gone").status_code == 204
    assert api.get("/v1/subscribers/gone").status_code == 404
    assert api.delete("/v1/subscribers/gone").status_code == 404
    with acme.activate():
        assert list(Subscriber.objects.values_list("external_id", flat=True)) == ["stays"]
        assert InboxItem.objects.count() == 1 and TopicSubscription.objects.count() == 1
        assert not Preference.objects.exists()


def test_subscriber_list_pages_with_opaque_cursors(acme: Org, django_assert_num_queries: object) -> None:
    api = server_api(acme)
    for i in range(7):
        api.put(f"/v1/subscribers/s{i}", {})
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        response = api.get("/v1/subscribers?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
        assert cursor and "s" not in cursor[:1]
    assert seen == [f"s{i}" for i in range(7)] and pages == 3


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "cursor=garbage", "cursor=eyJrIjoiaW5ib3giLCJ2IjoxfQ"])
def test_bad_limit_or_cursor_is_refused(acme: Org, query: str) -> None:
    response = server_api(acme).get(f"/v1/subscribers?{query}")
    assert response.status_code in (400, 422)
    assert problem_type(response) in ("validation-error", "invalid-cursor")


@pytest.mark.parametrize("size", [1, 50])
def test_list_query_count_does_not_grow_with_page_size(acme: Org, size: int, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    api = server_api(acme)
    api.post("/v1/topics/t/subscribers", {"subscriber_ids": ["x"]})  # 404: topic missing, nothing written
    api.put("/v1/topics/t", {})
    api.post("/v1/topics/t/subscribers", {"subscriber_ids": [f"s{i}" for i in range(size)]})
    api.post("/v1/notifications", {"topic": "t", "title": "x"})
    api.get("/v1/subscribers")  # warm the key cache and last_used_at
    # Keys are cached in Redis: each list is SET search_path plus a fixed number of queries.
    with django_assert_num_queries(2):
        assert len(api.get("/v1/subscribers?limit=100").json()["items"]) == size
    with django_assert_num_queries(3):
        assert len(api.get("/v1/topics/t/subscribers?limit=100").json()["items"]) == size
    with django_assert_num_queries(3):
        assert len(api.get("/v1/subscribers/s0/notifications?limit=100").json()["items"]) == 1


def test_topics_upsert_add_remove_list(acme: Org) -> None:
    api = server_api(acme)
    created = api.put("/v1/topics/product.updates", {"name": "Product updates"})
    assert created.status_code == 200 and created.json()["key"] == "product.updates"
    assert api.put("/v1/topics/product.updates", {"name": "Renamed"}).json()["name"] == "Renamed"
    added = api.post("/v1/topics/product.updates/subscribers", {"subscriber_ids": ["a", "b", "a"]})
    assert added.json() == {"added": 2}
    assert api.post("/v1/topics/product.updates/subscribers", {"subscriber_ids": ["a", "c"]}).json() == {"added": 1}
    listed = api.get("/v1/topics/product.updates/subscribers").json()
    assert [item["id"] for item in listed["items"]] == ["a", "b", "c"]
    assert api.delete("/v1/topics/product.updates/subscribers/b").status_code == 204
    assert api.delete("/v1/topics/product.updates/subscribers/b").status_code == 404
    assert [i["id"] for i in api.get("/v1/topics/product.updates/subscribers").json()["items"]] == ["a", "c"]
    assert api.get("/v1/subscribers/b").status_code == 200  # still a subscriber, just not in the topic


def test_topic_endpoints_on_unknown_topic_are_404(acme: Org) -> None:
    api = server_api(acme)
    assert api.post("/v1/topics/missing/subscribers", {"subscriber_ids": ["a"]}).status_code == 404
    assert api.get("/v1/topics/missing/subscribers").status_code == 404
    assert api.delete("/v1/topics/missing/subscribers/a").status_code == 404
    with acme.activate():
        assert not Subscriber.objects.exists()


def test_bad_topic_key_is_422(acme: Org) -> None:
    response = server_api(acme).put("/v1/topics/has space", {})
    assert response.status_code == 422 and problem_type(response) == "validation-error"


def test_subscriber_notifications_filter_on_read_archived_and_category(acme: Org) -> None:
    api = server_api(acme)
    ids = []
    for title, category in (("m0", "billing"), ("m1", "promo"), ("m2", "billing"), ("m3", "")):
        sent = api.post("/v1/notifications", {"to": ["ada"], "title": title, "category": category})
        assert sent.status_code == 202, sent.content
        ids.append(sent.json()["id"])
    m0, m1, m2, m3 = ids
    bob = api.post("/v1/notifications", {"to": ["bob"], "title": "not ada's", "category": "billing"})
    assert bob.status_code == 202
    ada = widget_api(acme, "ada")
    for message_id, action in ((m0, "read"), (m1, "archive"), (m2, "read"), (m2, "archive")):
        assert ada.post(f"/v1/inbox/notifications/{message_id}/{action}").status_code == 200
    # m0: billing, read; m1: promo, archived; m2: billing, read and archived; m3: no category, unread.
    expected = {
        "": [m3, m0],  # archived items only when asked for
        "read=true": [m0],
        "read=false": [m3],
        "archived=false": [m3, m0],
        "archived=true": [m2, m1],
        "archived=true&read=true": [m2],
        "archived=true&read=false": [m1],
        "category=billing": [m0],
        "category=billing&archived=true": [m2],
        "category=promo": [],
        "category=promo&archived=true": [m1],
        "category=billing&read=false": [],
        "category=none-such": [],
    }
    for query, want in expected.items():
        response = api.get(f"/v1/subscribers/ada/notifications?{query}")
        assert response.status_code == 200, (query, response.content)
        items = response.json()["items"]
        assert [item["id"] for item in items] == want, query
        for item in items:
            assert item["read"] == (item["id"] in (m0, m2)), (query, item)
            assert item["archived"] == (item["id"] in (m1, m2)), (query, item)
            assert item["category"] == {m0: "billing", m1: "promo", m2: "billing", m3: ""}[item["id"]], (query, item)


def test_topic_subscribers_walked_two_by_two_come_once_each_in_order(acme: Org) -> None:
    api = server_api(acme)
    for subscriber in "abcdefg":
        assert api.put(f"/v1/subscribers/{subscriber}", {}).status_code == 200
    assert api.put("/v1/topics/t", {}).status_code == 200
    # Added out of order, with d and f left out: listed in the order the subscribers were created.
    assert api.post("/v1/topics/t/subscribers", {"subscriber_ids": ["e", "a", "g", "c", "b"]}).json() == {"added": 5}
    pages = []
    cursor = None
    while len(pages) < 10:  # bounded: a cursor that never ends fails below instead of looping
        response = api.get("/v1/topics/t/subscribers?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.content
        page = response.json()
        pages.append(page)
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
        assert cursor
    assert [[item["id"] for item in page["items"]] for page in pages] == [["a", "b"], ["c", "e"], ["g"]]
    assert [page["has_more"] for page in pages] == [True, True, False]
    assert pages[-1]["next_cursor"] is None
