"""The widget's inbox routes the /v1 front serves on the event loop (notifications.widget_routes,
notifications.inbox) answer exactly as Django does: the same requests through a real server and through Django's
test client give the same status, problem type, fields and headers (CORS and rate-limit ones included). Plus
organisations and subscribers kept apart, bad input refused, changes reaching the subscriber's sockets, and the
routes served without Django."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from notifications.models import InboxItem
from tests.conftest import ALLOWED_ORIGIN, Org
from tests.notifications.api_support import (
    FrontWithoutDjango,
    LiveApi,
    problem_type,
    server_api,
    subscriber_hash_for,
    widget_api,
)
from tests.notifications.realtime_support import run_db, signing_secret, subscribe
from tests.servers import HeraldServer

_TIME = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEADERS = (
    "content-type",
    "ratelimit-policy",
    "access-control-allow-origin",
    "access-control-expose-headers",
    "vary",
    "x-content-type-options",
)


def _shape(response: Any) -> tuple[int, Any, dict[str, str | None]]:
    text = _UUID.sub("<id>", _TIME.sub("<time>", response.content.decode()))
    body = json.loads(text) if text else None
    if isinstance(body, dict):
        body.pop("instance", None)
    headers = {name: response.headers.get(name) for name in _HEADERS}
    headers["content-type"] = (headers["content-type"] or "").split(";")[0]  # Django adds `; charset=utf-8`
    for name in ("ratelimit-policy", "access-control-allow-origin"):
        if headers[name]:
            headers[name] = "<present>"  # remaining tokens and each organisation's origin differ
    return response.status_code, body, headers


def _sent(org: Org, count: int) -> list[str]:
    """Send `count` notifications to ada (categories alternate); their ids, oldest first."""
    api = server_api(org)
    ids = []
    for i in range(count):
        answer = api.post("/v1/notifications", {"to": ["ada"], "title": f"n{i}", "category": ["news", "promo"][i % 2]})
        assert answer.status_code == 202, answer.content
        ids.append(answer.json()["id"])
    return ids


OTHER_UUID = "00000000-0000-4000-8000-000000000000"

# (method, path, headers to change: None removes one)
CALLS: list[tuple[str, str, dict[str, str | None]]] = [
    ("GET", "/v1/inbox/notifications", {}),
    ("GET", "/v1/inbox/notifications?limit=2", {}),
    ("GET", "/v1/inbox/notifications?read=false&category=news", {}),
    ("GET", "/v1/inbox/notifications?archived=true", {}),
    ("GET", "/v1/inbox/notifications?archived=", {}),
    ("GET", "/v1/inbox/notifications?limit=0", {}),
    ("GET", "/v1/inbox/notifications?limit=abc", {}),
    ("GET", "/v1/inbox/notifications?limit=101", {}),
    ("GET", "/v1/inbox/notifications?read=maybe", {}),
    ("GET", "/v1/inbox/notifications?category=bad%21", {}),
    ("GET", "/v1/inbox/notifications?cursor=garbage", {}),
    ("GET", "/v1/inbox/notifications?cursor=" + "x" * 201, {}),
    ("GET", "/v1/inbox/notifications?x=1", {}),
    ("GET", "/v1/inbox/unread-count", {}),
    ("GET", "/v1/inbox/unread-count?limit=1", {}),
    ("POST", "/v1/inbox/notifications/{m0}/read", {}),
    ("POST", "/v1/inbox/notifications/{m0}/read", {}),
    ("GET", "/v1/inbox/unread-count", {}),
    ("POST", "/v1/inbox/notifications/{m0}/unread", {}),
    ("POST", "/v1/inbox/notifications/{m1}/archive", {}),
    ("POST", "/v1/inbox/notifications/{m1}/archive", {}),
    ("POST", "/v1/inbox/notifications/" + OTHER_UUID + "/read", {}),
    ("POST", "/v1/inbox/notifications/not-a-uuid/read", {}),
    ("POST", "/v1/inbox/notifications/" + "a" * 65 + "/read", {}),
    ("POST", "/v1/inbox/read-all", {}),
    ("POST", "/v1/inbox/read-all", {}),
    ("GET", "/v1/inbox/notifications?read=true", {}),
    # Who is asking, and from where.
    ("GET", "/v1/inbox/unread-count", {"X-Herald-Subscriber-Hash": "0" * 64}),
    ("GET", "/v1/inbox/unread-count", {"X-Herald-Subscriber-Hash": None}),
    ("GET", "/v1/inbox/unread-count", {"X-Herald-Publishable-Key": None}),
    ("GET", "/v1/inbox/unread-count", {"X-Herald-Publishable-Key": "pk_live_" + "A" * 28}),
    ("GET", "/v1/inbox/unread-count", {"X-Herald-Publishable-Key": "{sk}"}),
    ("GET", "/v1/inbox/unread-count", {"Origin": "https://evil.test"}),
    ("GET", "/v1/inbox/unread-count", {"Origin": None}),
    ("GET", "/v1/inbox/unread-count", {"Authorization": "Basic x"}),
    ("GET", "/v1/inbox/notifications?pk={pk}", {"X-Herald-Publishable-Key": None}),
    ("POST", "/v1/inbox/read-all", {"X-Herald-Subscriber": "nobody", "X-Herald-Subscriber-Hash": "{nobody}"}),
    ("GET", "/v1/inbox/notifications", {"X-Herald-Subscriber": "nobody", "X-Herald-Subscriber-Hash": "{nobody}"}),
]


def _run(org: Org, client: Any, ids: list[str]) -> list[tuple[int, Any, dict[str, str | None]]]:
    fills = {
        "{m0}": ids[0],
        "{m1}": ids[1],
        "{sk}": org.secret_key,
        "{pk}": org.publishable_key,
        "{nobody}": subscriber_hash_for(org, "nobody"),
    }
    shapes = []
    for method, path, changes in CALLS:
        headers = dict(client.base_headers)
        for name, value in changes.items():
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        for placeholder, value in fills.items():
            path = path.replace(placeholder, value)
            headers = {name: v.replace(placeholder, value) for name, v in headers.items()}
        client.headers = headers
        shapes.append(_shape(client.call(method, path)))
    return shapes


GLOBEX_ORIGIN = "http://app.globex.test"


def _clients(org: Org, server: HeraldServer | None, origin: str = ALLOWED_ORIGIN) -> Any:
    django = widget_api(org, "ada", origin=origin)
    client = django if server is None else LiveApi(server.url, None, **django.headers)
    client.base_headers = dict(django.headers)
    return client


def test_the_front_answers_inbox_routes_as_django_does(acme: Org, globex: Org, herald_server: HeraldServer) -> None:
    through_django = _run(acme, _clients(acme, None), _sent(acme, 4))
    through_server = _run(globex, _clients(globex, herald_server, GLOBEX_ORIGIN), _sent(globex, 4))  # elsewhere
    for call, django_shape, server_shape in zip(CALLS, through_django, through_server, strict=True):
        assert django_shape == server_shape, call
    statuses = [shape[0] for shape in through_server]
    assert statuses[:4] == [200, 200, 200, 200] and statuses[5:13] == [422, 422, 422, 422, 422, 400, 422, 422]
    assert len(through_server[0][1]["items"]) == 4 and through_server[1][1]["has_more"] is True
    assert through_server[13][1] == {"count": 4} and through_server[17][1] == {"count": 3}
    assert statuses[21:24] == [404, 404, 422]
    assert through_server[24][1] == {"marked": 4, "unread_count": 0}
    assert through_server[25][1] == {"marked": 0, "unread_count": 0}
    assert statuses[27:35] == [401, 401, 401, 401, 401, 403, 200, 401]
    assert through_server[32][2]["access-control-allow-origin"] is None  # no grant to an origin not allowed
    assert through_server[0][2]["access-control-allow-origin"] == "<present>"
    assert through_server[36][1] == {"marked": 0, "unread_count": 0} and through_server[37][1]["items"] == []


def test_inbox_routes_keep_organisations_and_subscribers_apart(
    acme: Org, globex: Org, herald_server: HeraldServer
) -> None:
    ids = _sent(acme, 2)
    ada = _clients(acme, herald_server)
    bob = LiveApi(herald_server.url, None, **widget_api(acme, "bob").headers)
    # Another subscriber of the same organisation neither sees nor changes ada's items.
    assert bob.get("/v1/inbox/notifications").json()["items"] == []
    assert bob.post(f"/v1/inbox/notifications/{ids[0]}/read").status_code == 404
    assert bob.post("/v1/inbox/read-all").json() == {"marked": 0, "unread_count": 0}
    # Globex's publishable key with a valid Globex proof for "ada" sees Globex's ada, never Acme's.
    globex_ada = LiveApi(herald_server.url, None, **widget_api(globex, "ada", origin=GLOBEX_ORIGIN).headers)
    assert globex_ada.get("/v1/inbox/notifications").json()["items"] == []
    assert globex_ada.post(f"/v1/inbox/notifications/{ids[0]}/archive").status_code == 404
    assert globex_ada.post("/v1/inbox/read-all").json()["marked"] == 0
    # Acme's key with a proof signed by Globex's secret is refused.
    forged = dict(widget_api(acme, "ada").headers, **{"X-Herald-Subscriber-Hash": subscriber_hash_for(globex, "ada")})
    answer = LiveApi(herald_server.url, None, **forged).get("/v1/inbox/unread-count")
    assert answer.status_code == 401 and problem_type(answer) == "invalid-subscriber-proof"
    assert ada.get("/v1/inbox/unread-count").json() == {"count": 2}
    with acme.activate():
        assert not InboxItem.objects.filter(read_at__isnull=False).exists()
        assert not InboxItem.objects.filter(archived_at__isnull=False).exists()


@pytest.mark.parametrize(
    "path",
    [
        "/v1/inbox/notifications?limit=-1",
        "/v1/inbox/notifications?limit=1e3",
        "/v1/inbox/notifications?archived=2",
        "/v1/inbox/notifications?category=" + "a" * 101,
        "/v1/inbox/notifications?cursor=eyJrIjoic3Vic2NyaWJlcnMiLCJ2IjoxfQ",  # another list's cursor
        "/v1/inbox/notifications?cursor=%FF",
    ],
)
def test_inbox_list_refuses_bad_queries(acme: Org, herald_server: HeraldServer, path: str) -> None:
    answer = _clients(acme, herald_server).get(path)
    assert answer.status_code in (400, 422) and problem_type(answer) in ("validation-error", "invalid-cursor")
    assert answer["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN


async def test_a_mark_through_the_front_reaches_the_subscribers_sockets(herald_server: HeraldServer, acme: Org) -> None:
    ids = await run_db(_sent, acme, 2)
    secret = await run_db(signing_secret, acme)
    socket, _, _ = await subscribe(herald_server, acme, secret, "ada")
    ada = await run_db(_clients, acme, herald_server)
    answer = await asyncio.to_thread(ada.post, f"/v1/inbox/notifications/{ids[0]}/read")
    assert answer.status_code == 200 and answer.json()["read"] is True
    update = await socket.recv_type("update")
    assert update["notification"]["id"] == ids[0] and update["notification"]["read_at"] is not None
    assert (await socket.recv_type("unread_count"))["count"] == 1
    assert (await asyncio.to_thread(ada.post, "/v1/inbox/read-all")).json() == {"marked": 1, "unread_count": 0}
    assert (await socket.recv_type("update"))["all_read"] is True
    await socket.close()


def test_the_front_serves_the_inbox_routes_without_django(acme: Org) -> None:
    """The moved widget routes never reach Django; a preflight, a message id Django would refuse, and the routes
    that stayed (preferences) go on to it."""
    from notifications.sending import run_blocking

    ids = _sent(acme, 1)
    headers = [(name.lower().encode(), value.encode()) for name, value in widget_api(acme, "ada").headers.items()]
    front = FrontWithoutDjango(headers)
    call, reached = front.call, front.reached

    async def scenario() -> list[int]:
        return [
            await call("GET", "/v1/inbox/notifications"),
            await call("GET", "/v1/inbox/unread-count"),
            await call("POST", f"/v1/inbox/notifications/{ids[0]}/read"),
            await call("POST", f"/v1/inbox/notifications/{ids[0]}/archive"),
            await call("POST", "/v1/inbox/read-all"),
            await call("OPTIONS", "/v1/inbox/read-all"),
            await call("POST", "/v1/inbox/notifications/" + "a" * 65 + "/read"),
            await call("GET", "/v1/inbox/preferences"),
        ]

    assert run_blocking(scenario()) == [200, 200, 200, 200, 200, 599, 599, 599]
    assert reached == [
        "OPTIONS /v1/inbox/read-all",
        f"POST /v1/inbox/notifications/{'a' * 65}/read",
        "GET /v1/inbox/preferences",
    ]
