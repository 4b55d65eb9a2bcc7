"""POST /v1/notifications and /batch through a real server (uvicorn, the /v1 front, the send engine):
audiences, content rules, opt-outs, sequences, commit before 202, refusals, rate limits, group commit."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from notifications.groups import subscriber_group
from notifications.models import InboxItem, Message, Preference, Subscriber, Topic, TopicSubscription
from notifications.proofs import subscriber_hash
from tenants.keys import key_hash
from tenants.models import ApiKey, SigningSecret
from tenants.ratelimit import bucket_key, redis_client
from tenants.services import api_key_revoke
from tests.conftest import ALLOWED_ORIGIN, Org
from tests.notifications.api_support import live_api, problem_type, server_api
from tests.servers import HeraldServer


def _subscribers(org: Org, *ids: str) -> list[Subscriber]:
    with org.activate():
        return [Subscriber.objects.create(external_id=i) for i in ids]


def test_send_to_unknown_ids_creates_subscribers_and_inbox_items(acme: Org, herald_server: HeraldServer) -> None:
    response = live_api(acme, herald_server).post("/v1/notifications", {"to": ["u1", "u2", "u1"], "title": "Hello"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["recipients"] == 2 and body["seq"] == 1
    uuid.UUID(body["id"])
    with acme.activate():
        message = Message.objects.get(pk=body["id"])
        assert message.recipient_count == 2 and message.audience == "subscribers"
        recipients = set(InboxItem.objects.filter(message=message).values_list("subscriber__external_id", flat=True))
        assert recipients == {"u1", "u2"}
        assert Subscriber.objects.count() == 2
        assert list(InboxItem.objects.values_list("seq", flat=True)) == [1, 1]


def test_sequences_increase_by_one_per_message(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    seqs = [api.post("/v1/notifications", {"to": ["s"], "title": f"n{i}"}).json()["seq"] for i in range(3)]
    assert seqs == [1, 2, 3]


def test_send_to_topic_reaches_its_subscribers_only(acme: Org, herald_server: HeraldServer) -> None:
    members = _subscribers(acme, "a", "b", "c")
    _subscribers(acme, "not-a-member")
    with acme.activate():
        topic = Topic.objects.create(key="launches")
        for subscriber in members:
            TopicSubscription.objects.create(topic=topic, subscriber=subscriber)
    response = live_api(acme, herald_server).post("/v1/notifications", {"topic": "launches", "title": "We launched"})
    assert response.status_code == 202
    assert response.json()["recipients"] == 3
    with acme.activate():
        message = Message.objects.get(pk=response.json()["id"])
        assert message.audience == "topic" and message.topic_id == topic.pk
        assert not InboxItem.objects.filter(subscriber__external_id="not-a-member").exists()


def test_send_to_unknown_topic_is_404_and_writes_nothing(acme: Org, herald_server: HeraldServer) -> None:
    response = live_api(acme, herald_server).post("/v1/notifications", {"topic": "nope", "title": "x"})
    assert response.status_code == 404 and problem_type(response) == "not-found"
    with acme.activate():
        assert not Message.objects.exists()


def test_broadcast_reaches_every_subscriber(acme: Org, herald_server: HeraldServer) -> None:
    _subscribers(acme, "a", "b", "c", "d")
    response = live_api(acme, herald_server).post("/v1/notifications", {"broadcast": True, "title": "Maintenance"})
    assert response.status_code == 202 and response.json()["recipients"] == 4


def test_category_opt_outs_are_respected(acme: Org, herald_server: HeraldServer) -> None:
    a, b = _subscribers(acme, "a", "b")
    with acme.activate():
        Preference.objects.create(subscriber=a, category="marketing", enabled=False)
        Preference.objects.create(subscriber=b, category="marketing", enabled=True)
    api = live_api(acme, herald_server)
    marketing = api.post("/v1/notifications", {"to": ["a", "b"], "title": "Sale", "category": "marketing"})
    assert marketing.json()["recipients"] == 1
    billing = api.post("/v1/notifications", {"to": ["a", "b"], "title": "Invoice", "category": "billing"})
    assert billing.json()["recipients"] == 2
    broadcast = api.post("/v1/notifications", {"broadcast": True, "title": "Sale", "category": "marketing"})
    assert broadcast.json()["recipients"] == 1
    with acme.activate():
        assert not InboxItem.objects.filter(subscriber=a, category="marketing").exists()
        assert InboxItem.objects.filter(subscriber=a, category="billing").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # The audience rule is the one check of the body as a whole: its error is on `body` itself
        # (a field's error, or an unknown field's, is on the field's path inside the body).
        ({"title": "no audience"}, "body"),
        ({"to": ["a"], "topic": "t", "title": "two audiences"}, "body"),
        ({"broadcast": False, "title": "x"}, "body"),
        ({"to": ["a"]}, "title"),
        ({"to": ["a"], "title": ""}, "title"),
        ({"to": [], "title": "x"}, "to"),
        ({"to": ["a"] * 1001, "title": "x"}, "to"),
        ({"to": ["a\u0001b"], "title": "x"}, "to.0"),
        ({"to": ["a"], "title": "x", "action_url": "javascript:alert(1)"}, "action_url"),
        ({"to": ["a"], "title": "x", "action_url": "ftp://example.com/x"}, "action_url"),
        ({"to": ["a"], "title": "x", "data": ["not", "an", "object"]}, "data"),
        ({"to": ["a"], "title": "x", "data": {"big": "x" * 40_000}}, "data"),
        ({"to": ["a"], "title": "x", "category": "has space"}, "category"),
        ({"to": ["a"], "title": "x", "surprise": 1}, "surprise"),
        ({"to": ["a"], "title": "x" * 501}, "title"),
    ],
)
def test_invalid_sends_are_422_with_field_path_and_write_nothing(
    acme: Org, herald_server: HeraldServer, body: dict, field: str
) -> None:
    response = live_api(acme, herald_server).post("/v1/notifications", body)
    assert response.status_code == 422, response.content
    assert problem_type(response) == "validation-error"
    fields = [error["field"] for error in response.json()["errors"]]
    assert field in fields, fields
    for error in response.json()["errors"]:  # loc: the location, then the path the field names
        loc = [str(part) for part in error["loc"]]
        assert loc == ["body", *error["field"].split(".")] or loc == [error["field"]] == ["body"], error
    with acme.activate():
        assert not Message.objects.exists() and not Subscriber.objects.exists()


def test_http_and_https_action_urls_are_accepted(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    for url in ("https://app.acme.test/orders/1", "http://localhost:3000/x?y=1"):
        response = api.post("/v1/notifications", {"to": ["a"], "title": "x", "action_url": url})
        assert response.status_code == 202, response.content


def test_bad_json_is_400(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    for raw in (b'{"to": ["a"], "title": ', b"\xff\xfe", b'{"to": ["a"], "title": NaN}'):
        response = api.call("POST", "/v1/notifications", raw=raw)
        assert response.status_code == 400, (raw, response.content)
        assert problem_type(response) == "invalid-json"


def test_nul_in_strings_is_refused_not_a_crash(acme: Org, herald_server: HeraldServer) -> None:
    response = live_api(acme, herald_server).call(
        "POST", "/v1/notifications", raw=b'{"to": ["a"], "title": "x\\u0000y", "data": {"k": "\\u0000"}}'
    )
    assert response.status_code in (400, 422)
    with acme.activate():
        assert not Message.objects.exists()


def test_oversized_body_is_413(acme: Org, herald_server: HeraldServer) -> None:
    body = json.dumps({"to": ["a"], "title": "x", "body": "y" * (256 * 1024)}).encode()
    response = live_api(acme, herald_server).call("POST", "/v1/notifications", raw=body)
    assert response.status_code == 413 and problem_type(response) == "payload-too-large"
    with acme.activate():
        assert not Message.objects.exists()


def test_send_through_the_server_is_committed_before_202(acme: Org, herald_server: HeraldServer) -> None:
    headers = {"Authorization": f"Bearer {acme.secret_key}"}
    with httpx.Client(base_url=herald_server.url, headers=headers, timeout=10) as client:
        for i in range(5):
            response = client.post("/v1/notifications", json={"to": ["live"], "title": f"n{i}"})
            assert response.status_code == 202, response.text
            # Visible at once from another connection: the 202 came after COMMIT.
            with acme.activate():
                assert Message.objects.filter(pk=response.json()["id"], recipient_count=1).exists()
        oversized = client.post(
            "/v1/notifications",
            content=b'{"title": "' + b"x" * (300 * 1024) + b'"}',
            headers={"Content-Type": "application/json"},
        )
        assert oversized.status_code == 413
        assert oversized.headers["content-type"] == "application/problem+json"
        bad = client.post("/v1/notifications", content=b"{nope", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400 and bad.json()["type"].endswith("/invalid-json")


def test_topic_with_10000_subscribers_is_written_in_one_insert(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    assert api.put("/v1/topics/everyone", {"name": "Everyone"}).status_code == 200
    ids = [f"user-{i}" for i in range(10_000)]
    for start in range(0, len(ids), 1000):
        added = api.post("/v1/topics/everyone/subscribers", {"subscriber_ids": ids[start : start + 1000]})
        assert added.status_code == 200 and added.json()["added"] == 1000
    response = api.post("/v1/notifications", {"topic": "everyone", "title": "Hello all"})
    assert response.status_code == 202 and response.json()["recipients"] == 10_000
    with connection.cursor() as cursor:
        # Rows inserted by one statement share its transaction (xmin) and its command id (cmin).
        cursor.execute(
            f"""SELECT count(*), count(DISTINCT xmin::text), count(DISTINCT cmin::text)
                FROM "{acme.schema_name}".notifications_inboxitem WHERE message_id = %s""",
            [response.json()["id"]],
        )
        assert cursor.fetchone() == (10_000, 1, 1)


def test_batch_with_an_idempotency_key_replays_its_first_answer_and_refuses_another_body(
    acme: Org, herald_server: HeraldServer
) -> None:
    api = live_api(acme, herald_server)
    batch = {
        "notifications": [
            {"to": ["ada", "bob"], "title": "one"},
            {"topic": "missing", "title": "two"},
            {"to": ["cy"], "title": "three", "category": "billing"},
        ]
    }
    first = api.post("/v1/notifications/batch", batch, **{"Idempotency-Key": "batch-1"})
    assert first.status_code == 200, first.content
    assert "Idempotent-Replayed" not in first
    assert [r["status"] for r in first.json()["results"]] == [202, 404, 202]
    assert [r["replayed"] for r in first.json()["results"]] == [False, False, False]
    again = api.post("/v1/notifications/batch", batch, **{"Idempotency-Key": "batch-1"})
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    # Through Django alone too (its view of the route hands the send to the same engine).
    served = server_api(acme).post("/v1/notifications/batch", batch, **{"Idempotency-Key": "batch-1"})
    assert served.status_code == 200 and served["Idempotent-Replayed"] == "true"
    assert served.json() == first.json()
    other = {"notifications": [{"to": ["ada"], "title": "another body"}]}
    reused = api.post("/v1/notifications/batch", other, **{"Idempotency-Key": "batch-1"})
    assert reused.status_code == 422 and problem_type(reused) == "idempotency-key-reused"
    with acme.activate():
        # The first answer's two messages only: nothing from the replays or the refused body.
        assert sorted(Message.objects.values_list("title", flat=True)) == ["one", "three"]
        assert InboxItem.objects.count() == 3
        assert sorted(Subscriber.objects.values_list("external_id", flat=True)) == ["ada", "bob", "cy"]


def _post(server: HeraldServer, key: str | None, body: object, **headers: str) -> httpx.Response:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(server.url + "/v1/notifications", json=body, headers=headers, timeout=20)


def test_concurrent_sends_each_get_their_own_committed_sequence(acme: Org, herald_server: HeraldServer) -> None:
    def send(i: int) -> httpx.Response:
        response = _post(herald_server, acme.secret_key, {"to": [f"user-{i % 5}"], "title": f"n{i}"})
        if response.status_code == 202:
            try:
                with acme.activate():  # committed before the 202
                    assert Message.objects.filter(pk=response.json()["id"]).exists()
            finally:
                connection.close()  # back to the pool: this thread is not Django's
        return response

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(send, range(48)))
    assert [r.status_code for r in responses] == [202] * 48, [r.text for r in responses if r.status_code != 202]
    seqs = sorted(r.json()["seq"] for r in responses)
    assert seqs == list(range(1, 49))
    assert all(r.json()["recipients"] == 1 for r in responses)
    assert "limit=" in responses[0].headers["RateLimit"]
    with acme.activate():
        assert Message.objects.count() == 48 and InboxItem.objects.count() == 48
        assert Subscriber.objects.count() == 5


def test_refusals_through_the_server(acme: Org, herald_server: HeraldServer) -> None:
    cases = [
        (None, {"to": ["a"], "title": "x"}, 401, "authentication-required"),
        (acme.publishable_key, {"to": ["a"], "title": "x"}, 401, "publishable-key-not-allowed"),
        (acme.secret_key[:-2] + "zz", {"to": ["a"], "title": "x"}, 401, "invalid-api-key"),
        (acme.secret_key, {"to": ["a"]}, 422, "validation-error"),
        (acme.secret_key, {"to": ["a"], "title": "x", "extra": 1}, 422, "validation-error"),
        (acme.secret_key, {"to": ["a"], "topic": "t", "title": "x"}, 422, "validation-error"),
        (acme.secret_key, {"to": ["a"], "title": "x", "action_url": "javascript:x"}, 422, "validation-error"),
        (acme.secret_key, {"topic": "missing", "title": "x"}, 404, "not-found"),
    ]
    for key, body, status, kind in cases:
        response = _post(herald_server, key, body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == f"https://herald.dev/problems/{kind}"
    fields = [e["field"] for e in _post(herald_server, acme.secret_key, {"to": ["a"]}).json()["errors"]]
    assert fields == ["title"]
    with acme.activate():
        assert not Message.objects.exists() and not Subscriber.objects.exists()


def test_revoked_key_is_refused_by_the_server_at_once(acme: Org, herald_server: HeraldServer) -> None:
    assert _post(herald_server, acme.secret_key, {"to": ["a"], "title": "x"}).status_code == 202
    api_key_revoke(api_key=ApiKey.objects.get(key_hash=key_hash(acme.secret_key)))
    response = _post(herald_server, acme.secret_key, {"to": ["a"], "title": "x"})
    assert response.status_code == 401 and response.json()["type"].endswith("/invalid-api-key")


def test_server_path_rate_limits_and_touches_last_used(acme: Org, globex: Org, herald_server: HeraldServer) -> None:
    row = ApiKey.objects.get(key_hash=key_hash(acme.secret_key))
    assert _post(herald_server, acme.secret_key, {"to": ["a"], "title": "x"}).status_code == 202
    row.refresh_from_db()
    assert row.last_used_at is not None
    redis_client().hset(bucket_key(row.pk), mapping={"tokens": "-100", "ts": str(int(time.time() * 1000) + 10_000)})
    limited = _post(herald_server, acme.secret_key, {"to": ["a"], "title": "x"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["type"].endswith("/rate-limited") and "remaining=0" in limited.headers["RateLimit"]
    assert _post(herald_server, globex.secret_key, {"to": ["a"], "title": "x"}).status_code == 202
    with acme.activate():
        assert Message.objects.count() == 1


def test_a_refused_key_is_answered_from_memory_until_its_next_token_and_no_longer(
    acme: Org, herald_server: HeraldServer
) -> None:
    """After the bucket refuses a key, the server answers it 429 without Redis until the bucket would refill."""
    row = ApiKey.objects.get(key_hash=key_hash(acme.secret_key))
    # 99 tokens in debt on the Free plan (50/s): the next token is 2 s away.
    redis_client().hset(bucket_key(row.pk), mapping={"tokens": "-99", "ts": str(int(time.time() * 1000))})
    refused_at = time.monotonic()
    first = _post(herald_server, acme.secret_key, {"to": ["a"], "title": "x"})
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    redis_client().delete(bucket_key(row.pk))  # a full bucket in Redis: only the server's memory refuses now
    asked_at = time.monotonic()
    again = _post(herald_server, acme.secret_key, {"to": ["a"], "title": "x"})
    # Asked before its Retry-After: answered after a delay (0.1-0.3 s, the next token being further away).
    assert time.monotonic() - asked_at >= 0.09
    assert time.monotonic() - refused_at < 1.8, "too slow to tell memory from Redis"
    assert again.status_code == 429 and again.json()["type"].endswith("/rate-limited")
    assert again.json() == first.json() and again.headers["RateLimit"] == first.headers["RateLimit"]
    assert "remaining=0" in again.headers["RateLimit"] and again.headers["Retry-After"] == "2"
    time.sleep(max(0.0, refused_at + 2.1 - time.monotonic()))
    assert _post(herald_server, acme.secret_key, {"to": ["a"], "title": "x"}).status_code == 202
    with acme.activate():
        assert Message.objects.count() == 1


def test_a_key_refused_on_any_route_is_answered_at_the_front_until_its_next_token(
    acme: Org, globex: Org, herald_server: HeraldServer
) -> None:
    """A refusal on a Django-served route also makes the server answer that key's next requests (any secret-key
    route) itself, until the bucket would refill; other keys, other organisations and the widget API carry on."""
    row = ApiKey.objects.get(key_hash=key_hash(acme.secret_key))
    auth = {"Authorization": f"Bearer {acme.secret_key}"}
    assert httpx.put(herald_server.url + "/v1/subscribers/ada", json={}, headers=auth).status_code == 200
    redis_client().hset(bucket_key(row.pk), mapping={"tokens": "-99", "ts": str(int(time.time() * 1000))})
    refused_at = time.monotonic()
    first = httpx.get(herald_server.url + "/v1/subscribers", headers=auth)
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    redis_client().delete(bucket_key(row.pk))  # a full bucket in Redis: only the server's memory refuses now
    read = httpx.get(herald_server.url + "/v1/subscribers/ada", headers=auth)
    sent = _post(herald_server, acme.secret_key, {"to": ["ada"], "title": "x"})
    assert time.monotonic() - refused_at < 1.8, "too slow to tell memory from Redis"
    for response, path in ((read, "/v1/subscribers/ada"), (sent, "/v1/notifications")):
        assert response.status_code == 429 and response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/rate-limited") and response.json()["instance"] == path
        assert response.headers["Retry-After"] == "2" and "remaining=0" in response.headers["RateLimit"]
    # Not the other organisation, not the widget API (the publishable key has its own bucket).
    other = httpx.get(herald_server.url + "/v1/subscribers", headers={"Authorization": f"Bearer {globex.secret_key}"})
    assert other.status_code == 200
    secret = SigningSecret.objects.filter(organization=acme.organization).values_list("secret", flat=True)[0]
    widget = httpx.get(
        herald_server.url + "/v1/inbox/unread-count",
        headers={
            "X-Herald-Publishable-Key": acme.publishable_key,
            "X-Herald-Subscriber": "ada",
            "X-Herald-Subscriber-Hash": subscriber_hash(secret, "ada"),
            "Origin": ALLOWED_ORIGIN,
        },
    )
    assert widget.status_code == 200, widget.text
    time.sleep(max(0.0, refused_at + 2.1 - time.monotonic()))
    assert httpx.get(herald_server.url + "/v1/subscribers/ada", headers=auth).status_code == 200
    with acme.activate():
        assert not Message.objects.exists()


def test_server_path_respects_opt_outs_and_idempotency(acme: Org, herald_server: HeraldServer) -> None:
    api = server_api(acme)
    api.put("/v1/subscribers/out", {})
    api.put("/v1/subscribers/in", {})
    with acme.activate():
        Preference.objects.create(subscriber=Subscriber.objects.get(external_id="out"), category="promo", enabled=False)
    sent = _post(herald_server, acme.secret_key, {"to": ["out", "in"], "title": "x", "category": "promo"})
    assert sent.json()["recipients"] == 1
    first = _post(herald_server, acme.secret_key, {"to": ["in"], "title": "once"}, **{"Idempotency-Key": "k"})
    again = _post(herald_server, acme.secret_key, {"to": ["in"], "title": "once"}, **{"Idempotency-Key": "k"})
    assert first.status_code == again.status_code == 202 and first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"


def test_oversized_body_is_413_before_anything_else(herald_server: HeraldServer) -> None:
    response = httpx.post(
        herald_server.url + "/v1/notifications",
        content=b"x" * (256 * 1024 + 1),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413 and response.json()["type"].endswith("/payload-too-large")


async def test_a_send_is_published_to_the_subscribers_group_after_commit(
    acme: Org, herald_server: HeraldServer
) -> None:
    await sync_to_async(server_api(acme).put)("/v1/subscribers/live", {})

    def pk() -> int:
        try:
            with acme.activate():
                return Subscriber.objects.get(external_id="live").pk
        finally:
            connection.close()  # back to the pool: this thread is not Django's

    layer = get_channel_layer()
    assert layer is not None
    channel = await layer.new_channel()
    await layer.group_add(subscriber_group(acme.organization.pk, await sync_to_async(pk)()), channel)
    async with httpx.AsyncClient(base_url=herald_server.url, timeout=20) as client:
        response = await client.post(
            "/v1/notifications",
            json={"to": ["live"], "title": "Live!"},
            headers={"Authorization": f"Bearer {acme.secret_key}"},
        )
    assert response.status_code == 202
    event = await asyncio.wait_for(layer.receive(channel), 10)
    assert event["type"] == "notification.new"
    assert event["notification"]["id"] == response.json()["id"] and event["notification"]["title"] == "Live!"
    assert event["notification"]["seq"] == response.json()["seq"]


def test_batches_through_the_server_answer_like_django_alone(acme: Org, herald_server: HeraldServer) -> None:
    api = server_api(acme)
    api.put("/v1/topics/t", {})
    api.post("/v1/topics/t/subscribers", {"subscriber_ids": ["x", "y"]})
    items = [{"to": ["a"], "title": "one"}, {"topic": "missing", "title": "no"}, {"topic": "t", "title": "three"}]
    headers = {"Authorization": f"Bearer {acme.secret_key}"}
    lean = httpx.post(herald_server.url + "/v1/notifications/batch", json={"notifications": items}, headers=headers)
    django_view = api.post("/v1/notifications/batch", {"notifications": items})
    assert lean.status_code == django_view.status_code == 200
    lean_results, view_results = lean.json()["results"], django_view.json()["results"]
    for results in (lean_results, view_results):
        assert [r["status"] for r in results] == [202, 404, 202]
        assert [r["recipients"] for r in results] == [1, None, 2]
    strip = {"id", "seq"}
    assert [{k: v for k, v in r.items() if k not in strip} for r in lean_results] == [
        {k: v for k, v in r.items() if k not in strip} for r in view_results
    ]
    keyed = {"notifications": [{"to": ["a"], "title": "k", "idempotency_key": "item-1"}]}
    first = httpx.post(herald_server.url + "/v1/notifications/batch", json=keyed, headers=headers).json()["results"]
    again = httpx.post(herald_server.url + "/v1/notifications/batch", json=keyed, headers=headers).json()["results"]
    assert again[0]["replayed"] is True and again[0]["id"] == first[0]["id"]
    too_many = httpx.post(
        herald_server.url + "/v1/notifications/batch", json={"notifications": items * 34}, headers=headers
    )
    assert too_many.status_code == 422 and too_many.json()["type"].endswith("/validation-error")
    with acme.activate():
        assert Message.objects.count() == 5


def test_a_send_the_database_refuses_fails_alone_in_its_group(acme: Org, herald_server: HeraldServer) -> None:
    # A constraint stands in for any failure PostgreSQL raises on one send of a group.
    with connection.cursor() as cursor:
        cursor.execute(
            f'ALTER TABLE "{acme.schema_name}".notifications_message ADD CONSTRAINT no_boom CHECK (title <> %s)',
            ["boom"],
        )

    def send(i: int) -> httpx.Response:
        return _post(herald_server, acme.secret_key, {"to": [f"u{i}"], "title": "boom" if i == 7 else f"ok {i}"})

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(send, range(32)))
    statuses = [r.status_code for r in responses]
    assert statuses[7] == 500 and responses[7].json()["type"].endswith("/internal-error")
    assert statuses[:7] + statuses[8:] == [202] * 31
    with acme.activate():
        assert Message.objects.count() == 31 and not Message.objects.filter(title="boom").exists()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"to": ["a"], "title": "x", "data": {"n": 1e400}}',  # infinity: PostgreSQL's json refuses it
        b'{"to": ["a"], "title": "x", "data": {"n": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}",  # too deep
    ],
)
def test_json_postgresql_cannot_store_is_400_not_a_crash(acme: Org, herald_server: HeraldServer, raw: bytes) -> None:
    headers = {"Authorization": f"Bearer {acme.secret_key}", "Content-Type": "application/json"}
    lean = httpx.post(herald_server.url + "/v1/notifications", content=raw, headers=headers)
    view = server_api(acme).call("POST", "/v1/notifications", raw=raw)
    assert lean.status_code == view.status_code == 400
    assert lean.json()["type"].endswith("/invalid-json")
    with acme.activate():
        assert not Message.objects.exists()


def test_sends_work_without_prepared_statements(acme: Org) -> None:
    """DATABASE_PREPARED_STATEMENTS=false (for transaction-mode poolers): the same answers and rows."""
    with HeraldServer(env={"DATABASE_PREPARED_STATEMENTS": "false"}) as server:
        single = _post(server, acme.secret_key, {"to": ["a", "b"], "title": "x"})
        assert single.status_code == 202 and single.json()["recipients"] == 2
        server_api(acme).put("/v1/topics/news", {"name": "News"})
        server_api(acme).post("/v1/topics/news/subscribers", {"subscriber_ids": ["a"]})
        topic = _post(server, acme.secret_key, {"topic": "news", "title": "t"})
        assert topic.status_code == 202 and topic.json()["recipients"] == 1
        batch = httpx.post(
            server.url + "/v1/notifications/batch",
            json={"notifications": [{"to": ["c"], "title": "1"}, {"topic": "missing", "title": "2"}]},
            headers={"Authorization": f"Bearer {acme.secret_key}"},
            timeout=20,
        )
        assert [r["status"] for r in batch.json()["results"]] == [202, 404]
    with acme.activate():
        assert Message.objects.count() == 3
        assert InboxItem.objects.count() == 4
        assert set(Subscriber.objects.values_list("external_id", flat=True)) == {"a", "b", "c"}
