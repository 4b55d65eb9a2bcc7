"""Topics over the server API: list with counts, get, delete, a subscriber's topics; fixed query counts."""

from __future__ import annotations

from typing import Any

import pytest

from notifications.models import InboxItem, Message, Subscriber, Topic, TopicSubscription
from tests.conftest import Org
from tests.notifications.api_support import Api, problem_type, server_api


def _topic(api: Api, key: str, members: list[str], name: str = "") -> None:
    assert api.put(f"/v1/topics/{key}", {"name": name}).status_code == 200
    if members:
        added = api.post(f"/v1/topics/{key}/subscribers", {"subscriber_ids": members})
        assert added.status_code == 200, added.content


def _walk(api: Api, path: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(20):
        page = api.get(f"{path}?limit={limit}" + (f"&cursor={cursor}" if cursor else "")).json()
        items += page["items"]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return items
        cursor = page["next_cursor"]
    raise AssertionError("the list never ended")


def test_topics_list_in_creation_order_with_subscriber_counts(acme: Org) -> None:
    api = server_api(acme)
    assert api.get("/v1/topics").json() == {"items": [], "next_cursor": None, "has_more": False}
    _topic(api, "news", ["a", "b", "c"], name="News")
    _topic(api, "empty", [])
    _topic(api, "billing", ["a"])
    listed = _walk(api, "/v1/topics", limit=2)
    assert [(t["key"], t["name"], t["subscriber_count"]) for t in listed] == [
        ("news", "News", 3),
        ("empty", "", 0),
        ("billing", "", 1),
    ]
    assert all(isinstance(t["created_at"], str) for t in listed)
    api.delete("/v1/topics/news/subscribers/b")
    assert api.get("/v1/topics").json()["items"][0]["subscriber_count"] == 2


def test_topic_get_answers_its_count_and_unknown_is_404(acme: Org) -> None:
    api = server_api(acme)
    _topic(api, "news", ["a", "b"], name="News")
    got = api.get("/v1/topics/news")
    assert got.status_code == 200, got.content
    assert {k: got.json()[k] for k in ("key", "name", "subscriber_count")} == {
        "key": "news",
        "name": "News",
        "subscriber_count": 2,
    }
    missing = api.get("/v1/topics/missing")
    assert missing.status_code == 404 and problem_type(missing) == "not-found"
    bad = api.get("/v1/topics/has%20space")
    assert bad.status_code == 422 and problem_type(bad) == "validation-error"


def test_topic_delete_removes_memberships_keeps_subscribers_and_sent_messages(acme: Org) -> None:
    api = server_api(acme)
    _topic(api, "news", ["a", "b"])
    _topic(api, "other", ["a"])
    sent = api.post("/v1/notifications", {"topic": "news", "title": "before"})
    assert sent.status_code == 202
    assert api.delete("/v1/topics/news").status_code == 204
    assert api.get("/v1/topics/news").status_code == 404
    assert api.delete("/v1/topics/news").status_code == 404
    assert [t["key"] for t in api.get("/v1/topics").json()["items"]] == ["other"]
    after = api.post("/v1/notifications", {"topic": "news", "title": "after"})
    assert after.status_code == 404 and problem_type(after) == "not-found"
    message = api.get(f"/v1/messages/{sent.json()['id']}").json()
    assert message["title"] == "before" and message["topic"] is None and message["delivery"]["delivered"] == 2
    assert api.get("/v1/subscribers/a").status_code == 200
    assert [t["key"] for t in api.get("/v1/subscribers/a/topics").json()["items"]] == ["other"]
    # A topic made again under the same key starts empty.
    _topic(api, "news", [])
    assert api.get("/v1/topics/news").json()["subscriber_count"] == 0
    with acme.activate():
        assert TopicSubscription.objects.count() == 1 and Subscriber.objects.count() == 2
        assert InboxItem.objects.count() == 2 and Message.objects.count() == 1


def test_subscriber_topics_lists_its_topics_with_counts(acme: Org) -> None:
    api = server_api(acme)
    for key in ("t1", "t2", "t3", "t4"):
        _topic(api, key, ["ada", "bob"] if key != "t3" else ["bob"])
    listed = _walk(api, "/v1/subscribers/ada/topics", limit=1)
    assert [(t["key"], t["subscriber_count"]) for t in listed] == [("t1", 2), ("t2", 2), ("t4", 2)]
    assert len(api.get("/v1/subscribers/bob/topics").json()["items"]) == 4
    api.put("/v1/subscribers/carol", {})
    assert api.get("/v1/subscribers/carol/topics").json() == {"items": [], "next_cursor": None, "has_more": False}
    missing = api.get("/v1/subscribers/nobody/topics")
    assert missing.status_code == 404 and problem_type(missing) == "not-found"


def test_topic_lists_refuse_bad_cursors_limits_and_publishable_keys(acme: Org) -> None:
    api = server_api(acme)
    _topic(api, "t1", ["ada"])
    _topic(api, "t2", ["ada"])
    api.put("/v1/subscribers/zed", {})
    foreign = api.get("/v1/subscribers?limit=1").json()["next_cursor"]  # a cursor of another list
    assert foreign
    for path in ("/v1/topics", "/v1/subscribers/ada/topics"):
        for query, status, kind in (
            ("?cursor=nope", 400, "invalid-cursor"),
            (f"?cursor={foreign}", 400, "invalid-cursor"),
            ("?limit=0", 422, "validation-error"),
            ("?limit=101", 422, "validation-error"),
        ):
            response = api.get(path + query)
            assert response.status_code == status and problem_type(response) == kind, (path, query)
    publishable = Api(acme.publishable_key)
    for method, path in (("GET", "/v1/topics"), ("GET", "/v1/topics/t1"), ("DELETE", "/v1/topics/t1")):
        response = publishable.call(method, path)
        assert response.status_code == 401 and problem_type(response) == "publishable-key-not-allowed"
    with acme.activate():
        assert Topic.objects.filter(key="t1").exists()


@pytest.mark.parametrize("size", [1, 30])
def test_topic_lists_cost_a_fixed_number_of_queries(acme: Org, size: int, django_assert_num_queries: Any) -> None:
    api = server_api(acme)
    for i in range(size):
        _topic(api, f"t{i}", ["ada", "bob"])
    api.get("/v1/topics")  # warm the key cache and its once-a-minute last_used_at write
    # SET search_path, then the page with its counts in one statement.
    with django_assert_num_queries(2):
        topics = api.get("/v1/topics?limit=100").json()["items"]
    assert len(topics) == size and {t["subscriber_count"] for t in topics} == {2}
    # SET search_path, the subscriber's pk, then its topics with their counts in one statement.
    with django_assert_num_queries(3):
        mine = api.get("/v1/subscribers/ada/topics?limit=100").json()["items"]
    assert len(mine) == size
    with django_assert_num_queries(2):
        assert api.get("/v1/topics/t0").json()["subscriber_count"] == 2
