"""Batches, message delivery counts and usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifications.models import IdempotencyRecord, InboxItem, Message
from tests.conftest import Org
from tests.notifications.api_support import live_api, problem_type, widget_api
from tests.servers import HeraldServer


def test_batch_answers_one_result_per_item_with_partial_success(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    api.put("/v1/topics/t", {})
    api.post("/v1/topics/t/subscribers", {"subscriber_ids": ["x", "y"]})
    items = [
        {"to": ["a"], "title": "one"},
        {"topic": "missing", "title": "fails"},
        {"topic": "t", "title": "three"},
        {"broadcast": True, "title": "four"},
    ]
    response = api.post("/v1/notifications/batch", {"notifications": items})
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 404, 202, 202]
    assert [r["recipients"] for r in results] == [1, None, 2, 3]
    assert results[1]["error"]["type"].endswith("/not-found") and results[1]["id"] is None
    seqs = [results[i]["seq"] for i in (0, 2, 3)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    with acme.activate():
        assert Message.objects.count() == 3 and InboxItem.objects.count() == 6
        assert not Message.objects.filter(title="fails").exists()


def test_batch_items_are_idempotent_on_their_own_keys(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    first = api.post(
        "/v1/notifications/batch",
        {"notifications": [{"to": ["a"], "title": "t1", "idempotency_key": "i1"}, {"to": ["b"], "title": "t2"}]},
    ).json()["results"]
    again = api.post(
        "/v1/notifications/batch",
        {
            "notifications": [
                {"to": ["a"], "title": "t1", "idempotency_key": "i1"},
                {"to": ["a"], "title": "changed", "idempotency_key": "i1"},
                {"to": ["c"], "title": "t3", "idempotency_key": "i3"},
            ]
        },
    ).json()["results"]
    assert again[0]["replayed"] is True and again[0]["id"] == first[0]["id"]
    assert again[1]["status"] == 422 and again[1]["error"]["type"].endswith("/idempotency-key-reused")
    assert again[2]["status"] == 202
    # The item key and the Idempotency-Key header of single sends share their keys.
    single = api.post("/v1/notifications", {"to": ["a"], "title": "t1"}, **{"Idempotency-Key": "i1"})
    assert single.status_code == 202 and single.json()["id"] == first[0]["id"]
    with acme.activate():
        assert Message.objects.count() == 3
        assert IdempotencyRecord.objects.filter(key__in=["i1", "i3"]).count() == 2


def test_batch_limits(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    too_many = api.post("/v1/notifications/batch", {"notifications": [{"to": ["a"], "title": "x"}] * 101})
    assert too_many.status_code == 422
    empty = api.post("/v1/notifications/batch", {"notifications": []})
    assert empty.status_code == 422
    bad_item = api.post("/v1/notifications/batch", {"notifications": [{"to": ["a"], "title": "x"}, {"to": ["a"]}]})
    assert bad_item.status_code == 422
    assert any(e["field"].endswith("notifications.1.title") for e in bad_item.json()["errors"])
    with acme.activate():
        assert not Message.objects.exists()


def test_message_shows_delivery_counts(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    sent = api.post("/v1/notifications", {"to": ["a", "b", "c"], "title": "x", "category": "billing"}).json()
    widget_api(acme, "a").post(f"/v1/inbox/notifications/{sent['id']}/read")
    widget_api(acme, "b").post(f"/v1/inbox/notifications/{sent['id']}/archive")
    message = api.get(f"/v1/messages/{sent['id']}")
    assert message.status_code == 200
    body = message.json()
    assert body["seq"] == sent["seq"] and body["audience"] == "subscribers" and body["category"] == "billing"
    assert body["delivery"] == {"recipients": 3, "delivered": 3, "seen": 1, "read": 1, "archived": 1, "unread": 2}
    api.delete("/v1/subscribers/c")
    assert api.get(f"/v1/messages/{sent['id']}").json()["delivery"]["delivered"] == 2
    for missing in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        response = api.get(f"/v1/messages/{missing}")
        assert response.status_code == 404 and problem_type(response) == "not-found"


def test_usage_counts_messages_and_notifications_per_day(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    api.post("/v1/notifications", {"to": ["a", "b"], "title": "x"})
    api.post("/v1/notifications", {"to": ["a"], "title": "y"})
    with acme.activate():
        old = Message.objects.order_by("seq").first()
        assert old is not None
        Message.objects.filter(pk=old.pk).update(created_at=datetime.now(tz=UTC) - timedelta(days=2))
    today = datetime.now(tz=UTC).date()
    usage = api.get("/v1/usage").json()
    assert len(usage["days"]) == 30 and usage["to"] == today.isoformat()
    assert (usage["messages"], usage["notifications"]) == (2, 3)
    by_day = {d["date"]: (d["messages"], d["notifications"]) for d in usage["days"]}
    assert by_day[today.isoformat()] == (1, 1)
    assert by_day[(today - timedelta(days=2)).isoformat()] == (1, 2)
    narrow = api.get(f"/v1/usage?from={today.isoformat()}&to={today.isoformat()}").json()
    assert [(d["date"], d["messages"], d["notifications"]) for d in narrow["days"]] == [(today.isoformat(), 1, 1)]
    assert api.get("/v1/usage?from=2026-02-01&to=2026-01-01").status_code == 422
    assert api.get("/v1/usage?from=not-a-date").status_code == 422
