"""POST /v1/notifications: audiences, content rules, opt-outs, sequences, commit before 202."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from notifications.models import InboxItem, Message, Preference, Subscriber, Topic, TopicSubscription
from tests.conftest import Org
from tests.notifications.api_support import problem_type, server_api
from tests.servers import HeraldServer


def _subscribers(org: Org, *ids: str) -> list[Subscriber]:
    with org.activate():
        return [Subscriber.objects.create(external_id=i) for i in ids]


def test_send_to_unknown_ids_creates_subscribers_and_inbox_items(acme: Org) -> None:
    response = server_api(acme).post("/v1/notifications", {"to": ["u1", "u2", "u1"], "title": "Hello"})
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


def test_sequences_increase_by_one_per_message(acme: Org) -> None:
    api = server_api(acme)
    seqs = [api.post("/v1/notifications", {"to": ["s"], "title": f"n{i}"}).json()["seq"] for i in range(3)]
    assert seqs == [1, 2, 3]


def test_send_to_topic_reaches_its_subscribers_only(acme: Org) -> None:
    members = _subscribers(acme, "a", "b", "c")
    _subscribers(acme, "not-a-member")
    with acme.activate():
        topic = Topic.objects.create(key="launches")
        for subscriber in members:
            TopicSubscription.objects.create(topic=topic, subscriber=subscriber)
    response = server_api(acme).post("/v1/notifications", {"topic": "launches", "title": "We launched"})
    assert response.status_code == 202
    assert response.json()["recipients"] == 3
    with acme.activate():
        message = Message.objects.get(pk=response.json()["id"])
        assert message.audience == "topic" and message.topic_id == topic.pk
        assert not InboxItem.objects.filter(subscriber__external_id="not-a-member").exists()


def test_send_to_unknown_topic_is_404_and_writes_nothing(acme: Org) -> None:
    response = server_api(acme).post("/v1/notifications", {"topic": "nope", "title": "x"})
    assert response.status_code == 404 and problem_type(response) == "not-found"
    with acme.activate():
        assert not Message.objects.exists()


def test_broadcast_reaches_every_subscriber(acme: Org) -> None:
    _subscribers(acme, "a", "b", "c", "d")
    response = server_api(acme).post("/v1/notifications", {"broadcast": True, "title": "Maintenance"})
    assert response.status_code == 202 and response.json()["recipients"] == 4


def test_category_opt_outs_are_respected(acme: Org) -> None:
    a, b = _subscribers(acme, "a", "b")
    with acme.activate():
        Preference.objects.create(subscriber=a, category="marketing", enabled=False)
        Preference.objects.create(subscriber=b, category="marketing", enabled=True)
    api = server_api(acme)
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
def test_invalid_sends_are_422_with_field_path_and_write_nothing(acme: Org, body: dict, field: str) -> None:
    response = server_api(acme).post("/v1/notifications", body)
    assert response.status_code == 422, response.content
    assert problem_type(response) == "validation-error"
    fields = [error["field"] for error in response.json()["errors"]]
    assert field in fields, fields
    for error in response.json()["errors"]:  # loc: the location, then the path the field names
        loc = [str(part) for part in error["loc"]]
        assert loc == ["body", *error["field"].split(".")] or loc == [error["field"]] == ["body"], error
    with acme.activate():
        assert not Message.objects.exists() and not Subscriber.objects.exists()


def test_http_and_https_action_urls_are_accepted(acme: Org) -> None:
    api = server_api(acme)
    for url in ("https://app.acme.test/orders/1", "http://localhost:3000/x?y=1"):
        response = api.post("/v1/notifications", {"to": ["a"], "title": "x", "action_url": url})
        assert response.status_code == 202, response.content


def test_bad_json_is_400(acme: Org) -> None:
    api = server_api(acme)
    for raw in (b'{"to": ["a"], "title": ', b"\xff\xfe", b'{"to": ["a"], "title": NaN}'):
        response = api.call("POST", "/v1/notifications", raw=raw)
        assert response.status_code == 400, (raw, response.content)
        assert problem_type(response) == "invalid-json"


def test_nul_in_strings_is_refused_not_a_crash(acme: Org) -> None:
    response = server_api(acme).call(
        "POST", "/v1/notifications", raw=b'{"to": ["a"], "title": "x\\u0000y", "data": {"k": "\\u0000"}}'
    )
    assert response.status_code in (400, 422)
    with acme.activate():
        assert not Message.objects.exists()


def test_oversized_body_is_413(acme: Org) -> None:
    body = json.dumps({"to": ["a"], "title": "x", "body": "y" * (256 * 1024)}).encode()
    response = server_api(acme).call("POST", "/v1/notifications", raw=body)
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


def test_topic_with_10000_subscribers_is_written_in_one_insert(acme: Org) -> None:
    api = server_api(acme)
    assert api.put("/v1/topics/everyone", {"name": "Everyone"}).status_code == 200
    ids = [f"user-{i}" for i in range(10_000)]
    for start in range(0, len(ids), 1000):
        added = api.post("/v1/topics/everyone/subscribers", {"subscriber_ids": ids[start : start + 1000]})
        assert added.status_code == 200 and added.json()["added"] == 1000
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = api.post("/v1/notifications", {"topic": "everyone", "title": "Hello all"})
    assert response.status_code == 202 and response.json()["recipients"] == 10_000
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT INTO" in q["sql"] and "inboxitem" in q["sql"]]
    assert len(inserts) == 1, inserts
    assert len(queries.captured_queries) < 15
    with acme.activate():
        assert InboxItem.objects.filter(message_id=response.json()["id"]).count() == 10_000


def test_batch_with_an_idempotency_key_replays_its_first_answer_and_refuses_another_body(
    acme: Org, herald_server: HeraldServer
) -> None:
    api = server_api(acme)
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
    # Through the server too (a request with an Idempotency-Key leaves the lean path for Django).
    served = httpx.post(
        herald_server.url + "/v1/notifications/batch",
        json=batch,
        headers={"Authorization": f"Bearer {acme.secret_key}", "Idempotency-Key": "batch-1"},
        timeout=20,
    )
    assert served.status_code == 200 and served.headers["Idempotent-Replayed"] == "true"
    assert served.json() == first.json()
    other = {"notifications": [{"to": ["ada"], "title": "another body"}]}
    reused = api.post("/v1/notifications/batch", other, **{"Idempotency-Key": "batch-1"})
    assert reused.status_code == 422 and problem_type(reused) == "idempotency-key-reused"
    with acme.activate():
        # The first answer's two messages only: nothing from the replays or the refused body.
        assert sorted(Message.objects.values_list("title", flat=True)) == ["one", "three"]
        assert InboxItem.objects.count() == 3
        assert sorted(Subscriber.objects.values_list("external_id", flat=True)) == ["ada", "bob", "cy"]
