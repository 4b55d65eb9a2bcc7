"""herald-client (clients/python) against a real Herald: uvicorn, PostgreSQL, Redis, and a proxy that loses answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from herald_client import (
    AsyncHerald,
    Herald,
    HeraldConnectionError,
    HeraldError,
    RetryPolicy,
    notification,
    subscriber_hash,
    subscriber_token,
)
from notifications import proofs
from notifications.models import InboxItem, Message, Subscriber
from tests.clients.proxy import Proxy
from tests.conftest import Org
from tests.servers import HeraldServer

QUICK = RetryPolicy(max_retries=3, backoff=0.01, max_backoff=0.05)


def _signing_secret(org: Org) -> str:
    return proofs.signing_secrets_live(org.organization.pk)[0]


def _messages(org: Org) -> list[Message]:
    with org.activate():
        return list(Message.objects.order_by("seq"))


@sync_to_async
def _messages_from_async(org: Org) -> list[Message]:
    try:
        return _messages(org)
    finally:
        connection.close()  # back to the pool: this thread is not Django's


@pytest.fixture
def herald(acme: Org, herald_server: HeraldServer) -> Iterator[Herald]:
    with Herald(acme.secret_key, base_url=herald_server.url, retry=QUICK) as client:
        yield client


def test_send_and_batch_write_what_the_server_answers(acme: Org, herald: Herald) -> None:
    sent = herald.send(to=["ada", "bob"], title="Hello", body="First", category="news", data={"n": 1})
    assert sent["recipients"] == 2 and sent["seq"] == 1
    batch = herald.send_batch(
        [
            notification(to=["ada"], title="one"),
            notification(topic="no-such-topic", title="two"),
            notification(broadcast=True, title="three"),
        ]
    )
    results = batch["results"]
    assert [r["status"] for r in results] == [202, 404, 202]
    assert results[1]["error"] is not None and results[1]["error"]["type"].endswith("/not-found")
    stored = _messages(acme)
    assert [(m.title, m.recipient_count) for m in stored] == [("Hello", 2), ("one", 1), ("three", 2)]
    assert str(stored[0].id) == sent["id"] and stored[0].data == {"n": 1} and stored[0].category == "news"
    with pytest.raises(HeraldError) as refused:
        herald.send(to=["ada"], topic="news", title="two audiences")
    assert refused.value.status == 422 and refused.value.type == "validation-error" and refused.value.errors


async def test_async_client_sends_and_batches(acme: Org, herald_server: HeraldServer) -> None:
    async with AsyncHerald(acme.secret_key, base_url=herald_server.url, retry=QUICK) as herald:
        sent = await herald.send(to=["ada"], title="async hello")
        batch = await herald.send_batch([notification(to=["bob"], title=f"b{i}") for i in range(3)])
        assert [r["status"] for r in batch["results"]] == [202] * 3
        message = await herald.message_get(sent["id"])
        assert message["title"] == "async hello" and message["delivery"]["delivered"] == 1
        with pytest.raises(HeraldError) as missing:
            await herald.subscriber_get("nobody")
        assert missing.value.status == 404 and missing.value.type == "not-found"
    assert [m.title for m in await _messages_from_async(acme)] == ["async hello", "b0", "b1", "b2"]


def test_client_covers_subscribers_topics_inbox_tokens_and_usage(acme: Org, herald: Herald) -> None:
    ada = herald.subscriber_upsert("ada@example.com", name="Ada", email="ada@example.com", data={"plan": "pro"})
    assert ada["id"] == "ada@example.com" and ada["name"] == "Ada"
    assert herald.subscriber_get("ada@example.com")["data"] == {"plan": "pro"}
    assert [s["id"] for s in herald.subscribers_list(limit=10)["items"]] == ["ada@example.com"]
    # Topics: create, members, lists with counts, a subscriber's topics, delete.
    assert herald.topic_upsert("news", name="News")["name"] == "News"
    assert herald.topic_subscribers_add("news", ["ada@example.com", "bob"]) == {"added": 2}
    assert herald.topic_get("news")["subscriber_count"] == 2
    assert [(t["key"], t["subscriber_count"]) for t in herald.topics_list()["items"]] == [("news", 2)]
    assert [s["id"] for s in herald.topic_subscribers("news")["items"]] == ["ada@example.com", "bob"]
    assert [t["key"] for t in herald.subscriber_topics("ada@example.com")["items"]] == ["news"]
    herald.topic_subscriber_remove("news", "bob")
    assert herald.topic_get("news")["subscriber_count"] == 1
    # The inbox, acted on from the server.
    first = herald.send(topic="news", title="topic news")["id"]
    second = herald.send(to=["ada@example.com"], title="direct")["id"]
    assert herald.mark_read("ada@example.com", first)["read"] is True
    assert herald.mark_unread("ada@example.com", first)["read"] is False
    assert herald.archive("ada@example.com", second)["archived"] is True
    assert [i["id"] for i in herald.subscriber_notifications("ada@example.com")["items"]] == [first]
    assert [i["id"] for i in herald.subscriber_notifications("ada@example.com", archived=True)["items"]] == [second]
    assert herald.unarchive("ada@example.com", second)["archived"] is False
    assert herald.read_all("ada@example.com") == {"marked": 2, "unread_count": 0}
    assert herald.preferences_set("ada@example.com", {"promo": False}) == {"categories": {"promo": False}}
    assert herald.preferences_get("ada@example.com") == {"categories": {"promo": False}}
    assert herald.send(to=["ada@example.com"], title="Sale", category="promo")["recipients"] == 0
    # Tokens, usage, deletes.
    token = herald.token_issue("ada@example.com", expires_in=120)
    assert token["subscriber_id"] == "ada@example.com" and token["token"].count(".") == 2
    usage = herald.usage()
    assert usage["messages"] == 3 and usage["notifications"] == 2 and len(usage["days"]) == 30
    herald.topic_delete("news")
    with pytest.raises(HeraldError) as gone:
        herald.topic_get("news")
    assert gone.value.status == 404
    herald.subscriber_delete("ada@example.com")
    with acme.activate():
        assert not Subscriber.objects.filter(external_id="ada@example.com").exists()
        assert not InboxItem.objects.filter(message_id=second).exists()


@pytest.mark.parametrize("variant", ["sync", "async"])
async def test_a_send_whose_answer_was_lost_is_retried_with_its_key_and_written_once(
    acme: Org, herald_server: HeraldServer, variant: str
) -> None:
    with Proxy(herald_server.port, cut=1) as proxy:
        if variant == "sync":
            with Herald(acme.secret_key, base_url=proxy.url, retry=QUICK) as herald:
                sent = herald.send(to=["ada"], title="exactly once")
        else:
            async with AsyncHerald(acme.secret_key, base_url=proxy.url, retry=QUICK) as aherald:
                sent = await aherald.send(to=["ada"], title="exactly once")
    keys = [seen.header("Idempotency-Key") for seen in proxy.requests]
    assert len(keys) == 2 and keys[0] is not None and keys[0] == keys[1], keys
    assert proxy.requests[0].body == proxy.requests[1].body
    stored = await _messages_from_async(acme)
    assert [str(m.id) for m in stored] == [sent["id"]] and stored[0].recipient_count == 1


def test_every_retry_reuses_the_key_and_retries_are_bounded(acme: Org, herald_server: HeraldServer) -> None:
    # Every answer lost: three retries, one key, one message; then a connection error.
    with Proxy(herald_server.port, cut=10) as proxy:
        with Herald(acme.secret_key, base_url=proxy.url, retry=QUICK) as herald:
            with pytest.raises(HeraldConnectionError):
                herald.send(to=["ada"], title="lost every time")
    assert len(proxy.requests) == 4 and len({seen.header("Idempotency-Key") for seen in proxy.requests}) == 1
    assert len(_messages(acme)) == 1
    # A load balancer answering 503: retried after its Retry-After, given up after max_retries.
    with Proxy(herald_server.port, unavailable=10, retry_after="0") as proxy:
        with Herald(acme.secret_key, base_url=proxy.url, retry=RetryPolicy(max_retries=2)) as herald:
            with pytest.raises(HeraldError) as unavailable:
                herald.send(to=["ada"], title="never arrives")
    assert unavailable.value.status == 503 and len(proxy.requests) == 3
    # ... and served once it recovers, still under the first attempt's key.
    with Proxy(herald_server.port, unavailable=1, retry_after="1") as proxy:
        with Herald(acme.secret_key, base_url=proxy.url, retry=QUICK) as herald:
            started = time.monotonic()
            herald.send(to=["ada"], title="after one 503")
            waited = time.monotonic() - started
    assert len(proxy.requests) == 2 and proxy.requests[0].header("Idempotency-Key") == proxy.requests[1].header(
        "Idempotency-Key"
    )
    assert waited >= 1.0, "Retry-After: 1 was not honoured"
    # A Retry-After longer than the client may wait is not waited for.
    with Proxy(herald_server.port, unavailable=10, retry_after="120") as proxy:
        with Herald(acme.secret_key, base_url=proxy.url, retry=QUICK) as herald:
            with pytest.raises(HeraldError) as too_long:
                herald.subscribers_list()
    assert too_long.value.retry_after == "120" and len(proxy.requests) == 1
    assert [m.title for m in _messages(acme)] == ["lost every time", "after one 503"]


def test_a_real_429_is_retried_after_its_retry_after_and_every_send_lands_once(
    acme: Org, herald_server: HeraldServer
) -> None:
    """Keep the Free plan's bucket (50/s, burst 100) dry with real requests while the client sends: 429, wait, 202.

    The draining requests are sends without a title: the server takes their token at its front and refuses them
    (422) before any database work, so even a busy machine asks faster than the bucket refills. They stop once
    the client has been refused, so its retry after Retry-After finds tokens again.
    """
    auth = {"Authorization": f"Bearer {acme.secret_key}"}
    deadline = time.monotonic() + 60
    drained, stop = threading.Event(), threading.Event()

    def hammer(_: int) -> list[int]:
        codes: list[int] = []
        with httpx.Client(base_url=herald_server.url, headers=auth, timeout=20) as http:
            while len(codes) < 5000 and time.monotonic() < deadline and not stop.is_set():
                codes.append(http.post("/v1/notifications", json={"to": ["ada"]}).status_code)
                if codes[-1] == 429:
                    drained.set()
        return codes

    attempts: list[tuple[int, str]] = []

    def record(response: httpx.Response) -> None:
        attempts.append((response.status_code, response.headers.get("Retry-After", "")))
        if response.status_code == 429:
            stop.set()

    sent: list[str] = []
    with ThreadPoolExecutor(max_workers=6) as pool:
        hammering = [pool.submit(hammer, i) for i in range(6)]
        try:
            assert drained.wait(30), "the bucket never ran dry"
            with httpx.Client(timeout=20, event_hooks={"response": [record]}) as http:
                herald = Herald(
                    acme.secret_key, base_url=herald_server.url, http_client=http, retry=RetryPolicy(max_retries=5)
                )
                # The client races the drain for each token: send until one of its sends is refused first.
                for i in range(40):
                    attempts.clear()
                    started = time.monotonic()
                    sent.append(herald.send(to=["ada"], title=f"send {i}")["id"])
                    waited = time.monotonic() - started
                    if attempts[0][0] == 429:
                        break
        finally:
            stop.set()
        codes = [code for future in hammering for code in future.result()]
    assert set(codes) == {422, 429}, set(codes)
    statuses = [status for status, _ in attempts]
    assert statuses[0] == 429 and statuses[-1] == 202 and set(statuses[:-1]) == {429}, attempts
    retry_after = int(attempts[0][1])
    assert retry_after >= 1 and waited >= retry_after * 0.9, (attempts, waited)
    # Every send written once: the ones that got through at once and the one retried after its 429.
    assert sorted(str(m.id) for m in _messages(acme)) == sorted(sent)


def test_proof_helpers_match_what_herald_verifies(acme: Org, herald_server: HeraldServer) -> None:
    secret = _signing_secret(acme)
    for subscriber_id in ("ada", "usér-ü 42@x", "日本"):
        assert subscriber_hash(secret, subscriber_id) == proofs.subscriber_hash(secret, subscriber_id)
        token = subscriber_token(secret, subscriber_id, expires_in=60)
        verified = proofs.subscriber_proof_verify(
            organization_id=acme.organization.pk, subscriber_id=subscriber_id, token=token
        )
        assert verified is not None and verified.subscriber_id == subscriber_id
        assert verified.expires_at is not None and 50 <= (verified.expires_at - datetime.now(tz=UTC)).seconds <= 61
    expired = subscriber_token(secret, "ada", expires_at=datetime.now(tz=UTC) - timedelta(seconds=5))
    assert (
        proofs.subscriber_proof_verify(organization_id=acme.organization.pk, subscriber_id="ada", token=expired) is None
    )
    forged = subscriber_token("not-the-secret", "ada")
    assert (
        proofs.subscriber_proof_verify(organization_id=acme.organization.pk, subscriber_id="ada", token=forged) is None
    )
    # Both open the widget API of the real server.
    base = {"X-Herald-Publishable-Key": acme.publishable_key}
    by_hash = {**base, "X-Herald-Subscriber": "ada", "X-Herald-Subscriber-Hash": subscriber_hash(secret, "ada")}
    by_token = {**base, "X-Herald-Subscriber-Token": subscriber_token(secret, "ada")}
    for headers in (by_hash, by_token):
        response = httpx.get(herald_server.url + "/v1/inbox/unread-count", headers=headers, timeout=20)
        assert response.status_code == 200 and response.json() == {"count": 0}, response.text
    with pytest.raises(ValueError):
        subscriber_token(secret, "ada", expires_in=None)
