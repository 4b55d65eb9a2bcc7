"""Idempotency-Key: one write per key, the first response replayed, other bodies refused, under concurrency."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from notifications.models import IdempotencyRecord, InboxItem, Message, Subscriber, TopicSubscription
from tests.conftest import Org
from tests.notifications.api_support import live_api, problem_type
from tests.servers import HeraldServer

BODY = {"to": ["ada", "bob"], "title": "Your order shipped", "data": {"order": 42}}


def test_same_key_same_body_replays_the_first_response_and_writes_nothing(
    acme: Org, herald_server: HeraldServer
) -> None:
    api = live_api(acme, herald_server)
    first = api.post("/v1/notifications", BODY, **{"Idempotency-Key": "order-42-shipped"})
    assert first.status_code == 202 and "Idempotent-Replayed" not in first
    reordered = {"data": {"order": 42}, "title": "Your order shipped", "to": ["ada", "bob"]}
    again = api.post("/v1/notifications", reordered, **{"Idempotency-Key": "order-42-shipped"})
    assert again.status_code == 202 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    with acme.activate():
        assert Message.objects.count() == 1 and InboxItem.objects.count() == 2


def test_same_key_other_body_is_422(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    api.post("/v1/notifications", BODY, **{"Idempotency-Key": "k1"})
    other = api.post("/v1/notifications", {**BODY, "title": "Something else"}, **{"Idempotency-Key": "k1"})
    assert other.status_code == 422 and problem_type(other) == "idempotency-key-reused"
    with acme.activate():
        assert Message.objects.count() == 1


def test_keys_are_per_organisation_and_per_endpoint(acme: Org, globex: Org, herald_server: HeraldServer) -> None:
    a = live_api(acme, herald_server).post("/v1/notifications", BODY, **{"Idempotency-Key": "shared"})
    b = live_api(globex, herald_server).post("/v1/notifications", BODY, **{"Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 202 and a.json()["id"] != b.json()["id"]
    live_api(acme, herald_server).put("/v1/topics/t", {})
    added = live_api(acme, herald_server).post(
        "/v1/topics/t/subscribers", {"subscriber_ids": ["x"]}, **{"Idempotency-Key": "shared"}
    )
    assert added.status_code == 200 and added.json() == {"added": 1}


def test_a_refused_request_does_not_use_up_its_key(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    body = {"topic": "later", "title": "x"}
    assert api.post("/v1/notifications", body, **{"Idempotency-Key": "k2"}).status_code == 404
    api.put("/v1/topics/later", {})
    assert api.post("/v1/notifications", body, **{"Idempotency-Key": "k2"}).status_code == 202
    with acme.activate():
        assert IdempotencyRecord.objects.filter(key="k2").count() == 1


def test_invalid_idempotency_keys_are_400(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    for key in ("x" * 256, "caf\u00e9"):
        response = api.post("/v1/notifications", BODY, **{"Idempotency-Key": key})
        assert response.status_code == 400 and problem_type(response) == "invalid-idempotency-key"
    with acme.activate():
        assert not Message.objects.exists()


def test_topic_add_replay_adds_nothing_more(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    api.put("/v1/topics/t", {})
    first = api.post("/v1/topics/t/subscribers", {"subscriber_ids": ["a", "b"]}, **{"Idempotency-Key": "add"})
    api.delete("/v1/topics/t/subscribers/a")
    again = api.post("/v1/topics/t/subscribers", {"subscriber_ids": ["a", "b"]}, **{"Idempotency-Key": "add"})
    assert again.json() == first.json() == {"added": 2}
    with acme.activate():
        assert TopicSubscription.objects.count() == 1  # the replay re-added nobody


def test_ten_parallel_identical_requests_make_one_message(acme: Org, herald_server: HeraldServer) -> None:
    headers = {
        "Authorization": f"Bearer {acme.secret_key}",
        "Idempotency-Key": "parallel-1",
        "Content-Type": "application/json",
    }
    payload = json.dumps(BODY).encode()

    def send(_: int) -> httpx.Response:
        return httpx.post(herald_server.url + "/v1/notifications", content=payload, headers=headers, timeout=20)

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(send, range(10)))
    assert [r.status_code for r in responses] == [202] * 10, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(1 for r in responses if r.headers.get("Idempotent-Replayed") == "true") == 9
    with acme.activate():
        assert Message.objects.count() == 1
        assert InboxItem.objects.count() == 2 and Subscriber.objects.count() == 2


def test_ten_parallel_requests_with_a_conflicting_body_get_422(acme: Org, herald_server: HeraldServer) -> None:
    headers = {"Authorization": f"Bearer {acme.secret_key}", "Idempotency-Key": "parallel-2"}

    def send(i: int) -> httpx.Response:
        body = BODY if i % 2 == 0 else {**BODY, "title": "other"}
        return httpx.post(herald_server.url + "/v1/notifications", json=body, headers=headers, timeout=20)

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(send, range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] * 5 + [422] * 5, [r.text for r in responses]
    winners = {r.json()["id"] for r in responses if r.status_code == 202}
    assert len(winners) == 1
    with acme.activate():
        assert Message.objects.count() == 1


def test_keys_are_kept_24_hours_then_may_be_used_again(acme: Org, herald_server: HeraldServer) -> None:
    from datetime import timedelta

    from django.utils import timezone

    api = live_api(acme, herald_server)
    first = api.post("/v1/notifications", BODY, **{"Idempotency-Key": "daily"})
    with acme.activate():
        IdempotencyRecord.objects.filter(key="daily").update(created_at=timezone.now() - timedelta(hours=23))
    assert api.post("/v1/notifications", {**BODY, "title": "new"}, **{"Idempotency-Key": "daily"}).status_code == 422
    with acme.activate():
        IdempotencyRecord.objects.filter(key="daily").update(created_at=timezone.now() - timedelta(hours=25))
    fresh = api.post("/v1/notifications", {**BODY, "title": "new"}, **{"Idempotency-Key": "daily"})
    assert fresh.status_code == 202 and fresh.json()["id"] != first.json()["id"]
    with acme.activate():
        assert Message.objects.count() == 2 and IdempotencyRecord.objects.filter(key="daily").count() == 1
