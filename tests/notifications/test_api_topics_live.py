"""The topic routes the /v1 front serves on the event loop (notifications.lean, notifications.topics): PUT
/v1/topics/{key}, POST /v1/topics/{key}/subscribers and DELETE /v1/topics/{key}/subscribers/{id} answer exactly
as Django does (the same requests through a real server and through Django's test client), keep organisations
apart, refuse bad input, and reach live sockets."""

from __future__ import annotations

from typing import Any

import pytest

from notifications.models import Subscriber, Topic, TopicSubscription
from tests.conftest import Org
from tests.notifications.api_support import FrontWithoutDjango, live_api, problem_type, secret_headers, server_api
from tests.notifications.realtime_support import api_call, api_send, run_db, signing_secret, subscribe
from tests.notifications.test_api_subscribers_live import _shape
from tests.servers import HeraldServer

CALLS: list[tuple[str, str, Any]] = [
    ("PUT", "/v1/topics/news", {"name": "News"}),
    ("PUT", "/v1/topics/news", {}),
    ("PUT", "/v1/topics/news", {"name": "Daily news"}),
    ("PUT", "/v1/topics/news", None),
    ("PUT", "/v1/topics/news", {"name": "x" * 256}),
    ("PUT", "/v1/topics/news", {"unknown": 1}),
    ("PUT", "/v1/topics/bad%20key", {"name": "B"}),
    ("PUT", "/v1/topics/news?x=1", {"name": "Q"}),
    ("POST", "/v1/topics/news/subscribers", {"subscriber_ids": ["ada", "bob", "ada"]}),
    ("POST", "/v1/topics/news/subscribers", {"subscriber_ids": ["bob", "cy"]}),
    ("POST", "/v1/topics/news/subscribers", {"subscriber_ids": []}),
    ("POST", "/v1/topics/news/subscribers", {"subscriber_ids": ["a/b"]}),
    ("POST", "/v1/topics/news/subscribers", {"subscriber_ids": "ada"}),
    ("POST", "/v1/topics/news/subscribers", {"subscriber_ids": ["ada"], "extra": True}),
    ("POST", "/v1/topics/news/subscribers", b""),  # an empty body (Django's test client would send a form)
    ("POST", "/v1/topics/nope/subscribers", {"subscriber_ids": ["ghost"]}),
    ("POST", "/v1/topics/news/subscribers?x=1", {"subscriber_ids": ["ada"]}),
    ("DELETE", "/v1/topics/news/subscribers/bob", None),
    ("DELETE", "/v1/topics/news/subscribers/bob", None),
    ("DELETE", "/v1/topics/news/subscribers/nobody", None),
    ("DELETE", "/v1/topics/nope/subscribers/ada", None),
    ("DELETE", "/v1/topics/news/subscribers/%20", None),
    ("DELETE", "/v1/topics/news/subscribers/ada?x=1", None),
    ("GET", "/v1/topics/news", None),  # served by Django in both: the counts the moved routes left
]


def _run(api: Any) -> list[tuple[int, Any, dict[str, str | None]]]:
    return [
        _shape(api.call(method, path, raw=body) if isinstance(body, bytes) else api.call(method, path, body))
        for method, path, body in CALLS
    ]


def test_the_front_answers_topic_routes_as_django_does(acme: Org, globex: Org, herald_server: HeraldServer) -> None:
    through_django = _run(server_api(acme))
    through_server = _run(live_api(globex, herald_server))  # the same history in another organisation
    for call, django_shape, server_shape in zip(CALLS, through_django, through_server, strict=True):
        assert (django_shape[0], django_shape[1]) == (server_shape[0], server_shape[1]), call
        assert {k: bool(v) for k, v in django_shape[2].items()} == {k: bool(v) for k, v in server_shape[2].items()}, (
            call
        )
    statuses = [shape[0] for shape in through_server]
    assert statuses[:4] == [200, 200, 200, 422]
    assert [through_server[i][1]["name"] for i in range(3)] == ["News", "News", "Daily news"]
    assert through_server[8][1] == {"added": 2} and through_server[9][1] == {"added": 1}
    assert statuses[15] == 404 and statuses[17:21] == [204, 404, 404, 404]
    assert through_server[-1][1]["subscriber_count"] == 2  # ada and cy
    with globex.activate():
        assert not Subscriber.objects.filter(external_id="ghost").exists()  # an unknown topic creates nobody
        assert set(TopicSubscription.objects.values_list("subscriber__external_id", flat=True)) == {"ada", "cy"}


def test_topic_routes_keep_organisations_apart(acme: Org, globex: Org, herald_server: HeraldServer) -> None:
    acme_api, globex_api = live_api(acme, herald_server), live_api(globex, herald_server)
    assert acme_api.put("/v1/topics/shared", {"name": "Acme's"}).status_code == 200
    assert acme_api.post("/v1/topics/shared/subscribers", {"subscriber_ids": ["ann"]}).json() == {"added": 1}
    # Globex's key does not see Acme's topic: membership changes are refused and write nothing.
    refused = globex_api.post("/v1/topics/shared/subscribers", {"subscriber_ids": ["ann", "intruder"]})
    assert refused.status_code == 404 and problem_type(refused) == "not-found"
    gone = globex_api.delete("/v1/topics/shared/subscribers/ann")
    assert gone.status_code == 404 and problem_type(gone) == "not-found"
    # Globex's topic of the same key is its own.
    assert globex_api.put("/v1/topics/shared", {"name": "Globex's"}).json()["name"] == "Globex's"
    assert globex_api.post("/v1/topics/shared/subscribers", {"subscriber_ids": ["ann"]}).json() == {"added": 1}
    assert globex_api.delete("/v1/topics/shared/subscribers/ann").status_code == 204
    with acme.activate():
        assert Topic.objects.get(key="shared").name == "Acme's"
        assert list(TopicSubscription.objects.values_list("subscriber__external_id", flat=True)) == ["ann"]
        assert not Subscriber.objects.filter(external_id="intruder").exists()
    with globex.activate():
        assert not TopicSubscription.objects.exists()
    for method, path in (("PUT", "/v1/topics/shared"), ("POST", "/v1/topics/shared/subscribers")):
        nokey = live_api(acme, herald_server)
        nokey.headers.pop("Authorization")
        answer = nokey.call(method, path, {"subscriber_ids": ["x"]} if method == "POST" else {})
        assert answer.status_code == 401 and problem_type(answer) == "authentication-required"
    publishable = live_api(acme, herald_server)
    publishable.headers["Authorization"] = f"Bearer {acme.publishable_key}"
    answer = publishable.delete("/v1/topics/shared/subscribers/ann")
    assert answer.status_code == 401 and problem_type(answer) == "publishable-key-not-allowed"


@pytest.mark.parametrize(
    "bad",
    [b"{", b"[]", b'{"subscriber_ids": [1]}', b'{"subscriber_ids": [""]}', b'{"subscriber_ids": ["\\u0000"]}'],
)
def test_topic_membership_refuses_bad_input_whole(acme: Org, herald_server: HeraldServer, bad: bytes) -> None:
    api = live_api(acme, herald_server)
    api.put("/v1/topics/t", {})
    response = api.call("POST", "/v1/topics/t/subscribers", raw=bad)
    assert response.status_code in (400, 422) and problem_type(response) in ("invalid-json", "validation-error")
    with acme.activate():
        assert not Subscriber.objects.exists() and not TopicSubscription.objects.exists()


def test_topic_membership_with_an_idempotency_key_runs_once(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    api.put("/v1/topics/k", {})
    body = {"subscriber_ids": ["k1", "k2"]}
    first = api.post("/v1/topics/k/subscribers", body, **{"Idempotency-Key": "add-1"})
    assert api.delete("/v1/topics/k/subscribers/k1").status_code == 204
    again = api.post("/v1/topics/k/subscribers", body, **{"Idempotency-Key": "add-1"})
    assert first.status_code == again.status_code == 200 and first.json() == again.json() == {"added": 2}
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    with acme.activate():  # the replay wrote nothing: k1 stays removed
        assert list(TopicSubscription.objects.values_list("subscriber__external_id", flat=True)) == ["k2"]
    other = api.post("/v1/topics/k/subscribers", {"subscriber_ids": ["k3"]}, **{"Idempotency-Key": "add-1"})
    assert other.status_code == 422 and problem_type(other) == "idempotency-key-reused"
    bad_key = api.post("/v1/topics/k/subscribers", body, **{"Idempotency-Key": "\u00e9"})
    assert bad_key.status_code == 400 and problem_type(bad_key) == "invalid-idempotency-key"
    # A refusal stores nothing: the key still works once the topic exists.
    unknown = api.post("/v1/topics/later/subscribers", body, **{"Idempotency-Key": "add-2"})
    assert unknown.status_code == 404
    api.put("/v1/topics/later", {})
    assert api.post("/v1/topics/later/subscribers", body, **{"Idempotency-Key": "add-2"}).json() == {"added": 2}


def test_concurrent_additions_of_new_subscribers_add_each_once(acme: Org, herald_server: HeraldServer) -> None:
    """Requests that create the same new subscribers at once each see them (the statement runs again for ids
    another transaction created meanwhile): every id ends up in the topic exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    api = live_api(acme, herald_server)
    api.put("/v1/topics/race", {})
    ids = [f"r{i}" for i in range(30)]

    def add(i: int) -> Any:
        return api.post("/v1/topics/race/subscribers", {"subscriber_ids": ids[i % 3 :: 2]})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(add, range(16)))
    assert all(a.status_code == 200 for a in answers), [a.content for a in answers if a.status_code != 200]
    with acme.activate():
        members = list(TopicSubscription.objects.values_list("subscriber__external_id", flat=True))
    assert sorted(members) == sorted(set(ids[0::2]) | set(ids[1::2]) | set(ids[2::2]))
    assert sum(a.json()["added"] for a in answers) == len(members)


def test_the_front_serves_topic_membership_without_django(acme: Org) -> None:
    """The moved topic routes never reach Django; keys or ids Django would refuse, and the topic routes that
    stayed (GET), go on to it."""
    from notifications.sending import run_blocking

    front = FrontWithoutDjango(secret_headers(acme))
    call, reached = front.call, front.reached

    async def scenario() -> list[int]:
        return [
            await call("PUT", "/v1/topics/front", {"name": "F"}),
            await call("POST", "/v1/topics/front/subscribers", {"subscriber_ids": ["f1"]}),
            await call("DELETE", "/v1/topics/front/subscribers/f1"),
            await call("DELETE", "/v1/topics/front/subscribers/f1"),
            await call("PUT", "/v1/topics/bad key", {}),
            await call("DELETE", "/v1/topics/front/subscribers/ "),
            await call("GET", "/v1/topics/front"),
        ]

    assert run_blocking(scenario()) == [200, 200, 204, 404, 599, 599, 599]
    assert reached == ["PUT /v1/topics/bad key", "DELETE /v1/topics/front/subscribers/ ", "GET /v1/topics/front"]


async def test_a_member_removed_through_the_front_stops_getting_the_topic(
    herald_server: HeraldServer, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    kim, _, _ = await subscribe(herald_server, acme, secret, "kim")
    await api_call(herald_server, acme, "PUT", "/v1/topics/ops", {"name": "Ops"})
    await api_call(herald_server, acme, "POST", "/v1/topics/ops/subscribers", {"subscriber_ids": ["kim"]})
    first = await api_send(herald_server, acme, topic="ops")
    assert (await kim.recv_type("notification"))["notification"]["id"] == first["id"]
    await api_call(herald_server, acme, "DELETE", "/v1/topics/ops/subscribers/kim")
    for _ in range(50):  # the socket leaves the topic's group once the membership event reaches it
        await api_send(herald_server, acme, topic="ops")
        try:
            await kim.recv_type("notification", timeout=0.3)
        except TimeoutError:
            break
    else:
        raise AssertionError("kim kept getting the topic after leaving it")
    await api_send(herald_server, acme, topic="ops")
    assert await kim.nothing_within(0.5)
    await kim.close()


@pytest.mark.parametrize("path", ["/v1/topics/touched", "/v1/subscribers/touched"])
def test_a_route_the_front_serves_touches_the_keys_last_used(acme: Org, herald_server: HeraldServer, path: str) -> None:
    from tenants.keys import key_hash
    from tenants.models import ApiKey
    from tenants.ratelimit import redis_client

    row = ApiKey.objects.get(key_hash=key_hash(acme.secret_key))
    redis_client().delete(f"herald:lu:{row.pk}")  # the last-used minute is over
    ApiKey.objects.filter(pk=row.pk).update(last_used_at=None)
    assert live_api(acme, herald_server).put(path, {}).status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None
