"""A rolled secret key through uvicorn: both the lean send path and Django-served routes honour its grace period."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx

from notifications.models import Message
from tenants.keys import key_hash
from tenants.models import ApiKey
from tenants.services import api_key_roll
from tests.conftest import Org
from tests.servers import HeraldServer

GRACE = timedelta(seconds=3)
SEND = {"to": ["ada"], "title": "x"}


def _post(server: HeraldServer, key: str, body: object) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/notifications", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=20
    )


def _list(server: HeraldServer, key: str) -> httpx.Response:
    return httpx.get(server.url + "/v1/subscribers", headers={"Authorization": f"Bearer {key}"}, timeout=20)


def test_rolled_secret_key_works_on_the_server_inside_its_grace_period_and_not_after(
    acme: Org, herald_server: HeraldServer
) -> None:
    old = acme.secret_key
    # The server has resolved (and cached) the old key before it is rolled.
    assert _post(herald_server, old, SEND).status_code == 202
    assert _list(herald_server, old).status_code == 200
    grace = GRACE.total_seconds()

    rolled_at = time.monotonic()
    new = api_key_roll(api_key=ApiKey.objects.get(key_hash=key_hash(old)), grace=GRACE).key
    roll_returned_at = time.monotonic()

    inside_send = _post(herald_server, old, SEND)  # the send route of the front (event loop)
    inside_list = _list(herald_server, old)  # a route Django serves
    assert time.monotonic() - rolled_at < grace - 0.5, "too slow: the inside-grace requests may have crossed it"
    assert inside_send.status_code == 202, inside_send.text
    assert inside_list.status_code == 200, inside_list.text
    assert [item["id"] for item in inside_list.json()["items"]] == ["ada"]
    assert _post(herald_server, new, SEND).status_code == 202
    assert _list(herald_server, new).status_code == 200

    # The expiry was set inside api_key_roll: once roll_returned_at + grace has passed, it has passed too.
    time.sleep(max(0.0, roll_returned_at + grace + 0.2 - time.monotonic()))
    after_send = _post(herald_server, old, SEND)
    after_list = _list(herald_server, old)
    for response in (after_send, after_list):
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/invalid-api-key")
    after_new_send = _post(herald_server, new, SEND)
    after_new_list = _list(herald_server, new)
    assert after_new_send.status_code == 202, after_new_send.text
    assert after_new_list.status_code == 200, after_new_list.text
    with acme.activate():
        # Before the roll, inside the grace (old and new key), after it (new key only): 4 messages.
        assert Message.objects.count() == 4
