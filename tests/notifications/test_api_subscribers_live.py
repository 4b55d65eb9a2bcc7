"""The subscriber routes the /v1 front serves on the event loop (notifications.lean, notifications.subscribing)
answer exactly as Django does: the same requests through a real server and through Django's test client give the
same status, problem type, fields and headers. Plus what only a real server shows: bulk import, idempotency,
organisations kept apart."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from notifications.models import Subscriber
from tests.conftest import Org
from tests.notifications.api_support import FrontWithoutDjango, live_api, problem_type, secret_headers, server_api
from tests.servers import HeraldServer

_TIME = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z")
_HEADERS = ("content-type", "idempotent-replayed", "x-content-type-options", "ratelimit-policy")


def _shape(response: Any) -> tuple[int, Any, dict[str, str | None]]:
    """Status, body (times and tokens masked) and the headers customers read."""
    text = response.content.decode()
    body = json.loads(_TIME.sub("<time>", text)) if text else None
    if isinstance(body, dict):
        body.pop("instance", None)
        if "token" in body:
            body["token"] = "<token>"
    return response.status_code, body, {name: response.headers.get(name) for name in _HEADERS}


CALLS: list[tuple[str, str, Any]] = [
    ("PUT", "/v1/subscribers/{p}ada", {"name": "Ada", "email": "ada@example.com", "data": {"plan": "pro"}}),
    ("PUT", "/v1/subscribers/{p}ada", {"locale": "fr-FR"}),
    ("PUT", "/v1/subscribers/{p}ada", {}),
    ("GET", "/v1/subscribers/{p}ada", None),
    ("PUT", "/v1/subscribers/{p}bad", {"email": "not-an-email"}),
    ("PUT", "/v1/subscribers/{p}bad", {"unknown": 1}),
    ("PUT", "/v1/subscribers/{p}bad", None),
    ("PUT", "/v1/subscribers/%20", {}),
    ("GET", "/v1/subscribers/{p}nobody", None),
    ("GET", "/v1/subscribers/{p}ada?x=1", None),
    ("POST", "/v1/subscribers/{p}ada/tokens", {"expires_in": 120}),
    ("POST", "/v1/subscribers/{p}ada/tokens", {"expires_in": 5}),
    ("POST", "/v1/subscribers/{p}nobody/tokens", {}),
    ("POST", "/v1/subscribers/{p}ada", {}),
    ("DELETE", "/v1/subscribers/{p}ada", None),
    ("DELETE", "/v1/subscribers/{p}ada", None),
    ("POST", "/v1/subscribers/bulk", {"subscribers": [{"id": "{p}b1", "name": "B"}, {"id": "{p}b2"}]}),
    ("POST", "/v1/subscribers/bulk", {"subscribers": [{"id": "{p}b1"}, {"id": "{p}b3", "email": "x"}]}),
    ("POST", "/v1/subscribers/bulk", {"subscribers": []}),
]


def _run(api: Any, prefix: str) -> list[tuple[int, Any, dict[str, str | None]]]:
    shapes = []
    for method, path, body in CALLS:
        payload = json.loads(json.dumps(body).replace("{p}", prefix)) if body is not None else None
        response = api.call(method, path.replace("{p}", prefix), payload)
        shapes.append(_shape(response))
    return shapes


def test_the_front_answers_subscriber_routes_as_django_does(
    acme: Org, globex: Org, herald_server: HeraldServer
) -> None:
    through_django = _run(server_api(acme), "")
    through_server = _run(live_api(globex, herald_server), "")  # the same history in another organisation
    for call, django_shape, server_shape in zip(CALLS, through_django, through_server, strict=True):
        # The rate-limit policy differs only by the bucket's remaining tokens; its presence is what matters.
        assert (django_shape[0], django_shape[1]) == (server_shape[0], server_shape[1]), call
        assert {k: bool(v) for k, v in django_shape[2].items()} == {k: bool(v) for k, v in server_shape[2].items()}, (
            call
        )
    assert through_server[0][0] == 200 and through_server[0][1]["name"] == "Ada"
    assert through_server[14][0] == 204 and through_server[15][0] == 404


def test_bulk_import_upserts_up_to_a_thousand_with_one_result_each(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    api.put("/v1/subscribers/old", {"name": "Old", "email": "old@example.com"})
    items = [{"id": f"u{i}", "name": f"User {i}"} for i in range(999)] + [{"id": "old", "locale": "de"}]
    response = api.post("/v1/subscribers/bulk", {"subscribers": items})
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(1000))
    assert results[0] == {"index": 0, "status": 201, "id": "u0", "created": True}
    assert results[-1] == {"index": 999, "status": 200, "id": "old", "created": False}
    old = api.get("/v1/subscribers/old").json()
    assert (old["name"], old["email"], old["locale"]) == ("Old", "old@example.com", "de")
    with acme.activate():
        assert Subscriber.objects.count() == 1000
    too_many = api.post("/v1/subscribers/bulk", {"subscribers": [{"id": f"x{i}"} for i in range(1001)]})
    assert too_many.status_code == 422 and problem_type(too_many) == "validation-error"
    twice = api.post("/v1/subscribers/bulk", {"subscribers": [{"id": "t", "name": "A"}, {"id": "t", "email": ""}]})
    assert [r["status"] for r in twice.json()["results"]] == [201, 200]
    assert api.get("/v1/subscribers/t").json()["name"] == "A"


@pytest.mark.parametrize("bad", [b"{", b"[]", b'{"subscribers": [{"id": "a/b"}]}', b'{"subscribers": [{}]}'])
def test_bulk_import_refuses_bad_input_whole(acme: Org, herald_server: HeraldServer, bad: bytes) -> None:
    response = live_api(acme, herald_server).call("POST", "/v1/subscribers/bulk", raw=bad)
    assert response.status_code in (400, 422) and problem_type(response) in ("invalid-json", "validation-error")
    with acme.activate():
        assert not Subscriber.objects.exists()


def test_bulk_import_with_an_idempotency_key_runs_once(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    body = {"subscribers": [{"id": "k1", "name": "First"}]}
    first = api.post("/v1/subscribers/bulk", body, **{"Idempotency-Key": "import-1"})
    api.put("/v1/subscribers/k1", {"name": "Changed"})
    again = api.post("/v1/subscribers/bulk", body, **{"Idempotency-Key": "import-1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert api.get("/v1/subscribers/k1").json()["name"] == "Changed"  # the replay wrote nothing
    other = api.post("/v1/subscribers/bulk", {"subscribers": [{"id": "k2"}]}, **{"Idempotency-Key": "import-1"})
    assert other.status_code == 422 and problem_type(other) == "idempotency-key-reused"
    bad_key = api.post("/v1/subscribers/bulk", body, **{"Idempotency-Key": "\u00e9"})
    assert bad_key.status_code == 400 and problem_type(bad_key) == "invalid-idempotency-key"


def test_a_token_with_an_idempotency_key_is_issued_once(acme: Org, herald_server: HeraldServer) -> None:
    api = live_api(acme, herald_server)
    api.put("/v1/subscribers/tok", {})
    first = api.post("/v1/subscribers/tok/tokens", {}, **{"Idempotency-Key": "t-1"})
    again = api.post("/v1/subscribers/tok/tokens", {}, **{"Idempotency-Key": "t-1"})
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first


def test_a_subscriber_called_bulk_is_still_reachable(acme: Org, herald_server: HeraldServer) -> None:
    for api in (live_api(acme, herald_server), server_api(acme)):
        assert api.put("/v1/subscribers/bulk", {"name": "Bulk"}).json()["name"] == "Bulk"
        assert api.get("/v1/subscribers/bulk").json()["id"] == "bulk"
        assert api.delete("/v1/subscribers/bulk").status_code == 204
        assert api.get("/v1/subscribers/bulk").status_code == 404


def test_subscriber_routes_keep_organisations_apart(acme: Org, globex: Org, herald_server: HeraldServer) -> None:
    acme_api, globex_api = live_api(acme, herald_server), live_api(globex, herald_server)
    acme_api.put("/v1/subscribers/shared-id", {"name": "Acme's"})
    acme_api.post("/v1/subscribers/bulk", {"subscribers": [{"id": "imported"}]})
    assert globex_api.get("/v1/subscribers/shared-id").status_code == 404
    assert globex_api.get("/v1/subscribers/imported").status_code == 404
    assert globex_api.delete("/v1/subscribers/shared-id").status_code == 404
    assert globex_api.post("/v1/subscribers/shared-id/tokens", {}).status_code == 404
    globex_api.put("/v1/subscribers/shared-id", {"name": "Globex's"})
    assert acme_api.get("/v1/subscribers/shared-id").json()["name"] == "Acme's"
    for path in ("/v1/subscribers/shared-id", "/v1/subscribers/bulk"):
        nokey = live_api(acme, herald_server)
        nokey.headers.pop("Authorization")
        answer = nokey.call("GET" if "shared" in path else "POST", path, None if "shared" in path else {})
        assert answer.status_code == 401 and problem_type(answer) == "authentication-required"


def test_the_front_serves_the_subscriber_routes_without_django(acme: Org) -> None:
    """PUT/GET/DELETE /v1/subscribers/{id}, .../tokens and the bulk import never reach Django (nor its thread);
    an id Django would refuse goes on to Django (it words that refusal)."""
    from notifications.sending import run_blocking

    front = FrontWithoutDjango(secret_headers(acme))
    call, reached = front.call, front.reached

    async def scenario() -> list[int]:
        return [
            await call("PUT", "/v1/subscribers/front-1", {"name": "F"}),
            await call("GET", "/v1/subscribers/front-1"),
            await call("POST", "/v1/subscribers/front-1/tokens", {}),
            await call("POST", "/v1/subscribers/bulk", {"subscribers": [{"id": "front-2"}]}),
            await call("DELETE", "/v1/subscribers/front-1"),
            await call("GET", "/v1/subscribers/front-1"),
            await call("GET", "/v1/subscribers/ "),  # an id of only a space: Django's to refuse
            await call("GET", "/v1/subscribers/front-2", query=b"x=1"),
        ]

    statuses = run_blocking(scenario())
    assert statuses[:6] == [200, 200, 200, 200, 204, 404]
    assert reached == ["GET /v1/subscribers/ "]  # a query string is refused by the route itself, as Django does
    assert statuses[7] == 422


def test_concurrent_upserts_each_answer_their_own_write(acme: Org, herald_server: HeraldServer) -> None:
    """Upserts that arrive together share one statement (notifications.subscribing); each still gets its own row,
    and two at once on one id are both applied, one after the other."""
    from concurrent.futures import ThreadPoolExecutor

    api = live_api(acme, herald_server)

    def put(i: int) -> Any:
        subscriber = f"c{i % 20}"
        return api.put(
            f"/v1/subscribers/{subscriber}", {"name": f"n{i}", "data": {"i": i}} if i < 20 else {"locale": "fr"}
        )

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(put, range(40)))
    assert all(a.status_code == 200 for a in answers), [a.content for a in answers if a.status_code != 200]
    for i, answer in enumerate(answers):
        assert answer.json()["id"] == f"c{i % 20}"
        if i < 20:
            assert answer.json()["data"] == {"i": i}
    for i in range(20):
        final = api.get(f"/v1/subscribers/c{i}").json()
        assert (final["name"], final["data"], final["locale"]) == (f"n{i}", {"i": i}, "fr")
