"""A backend acts on a subscriber's inbox with its secret key: read, unread, archive, read-all, preferences."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from notifications.groups import subscriber_group
from notifications.models import InboxItem, Preference, Subscriber
from tests.conftest import Org
from tests.notifications.api_support import Api, problem_type, server_api, widget_api
from tests.servers import HeraldServer


def _send(org: Org, to: list[str], title: str = "x", **extra: object) -> str:
    response = server_api(org).post("/v1/notifications", {"to": to, "title": title, **extra})
    assert response.status_code == 202, response.content
    return str(response.json()["id"])


def test_server_marks_read_unread_archive_unarchive_and_the_widget_sees_it(acme: Org) -> None:
    ids = [_send(acme, ["ada"], f"n{i}") for i in range(3)]
    api = server_api(acme)
    widget = widget_api(acme, "ada")
    read = api.post(f"/v1/subscribers/ada/notifications/{ids[0]}/read")
    assert read.status_code == 200, read.content
    assert read.json()["id"] == ids[0] and read.json()["read"] is True and read.json()["seen"] is True
    assert widget.get("/v1/inbox/unread-count").json() == {"count": 2}
    unread = api.post(f"/v1/subscribers/ada/notifications/{ids[0]}/unread")
    assert unread.json()["read"] is False and unread.json()["read_at"] is None and unread.json()["seen"] is True
    archived = api.post(f"/v1/subscribers/ada/notifications/{ids[1]}/archive")
    assert archived.json()["archived"] is True and archived.json()["archived_at"] is not None
    assert [i["id"] for i in widget.get("/v1/inbox/notifications").json()["items"]] == [ids[2], ids[0]]
    assert [i["id"] for i in api.get("/v1/subscribers/ada/notifications?archived=true").json()["items"]] == [ids[1]]
    unarchived = api.post(f"/v1/subscribers/ada/notifications/{ids[1]}/unarchive")
    assert unarchived.json()["archived"] is False and unarchived.json()["archived_at"] is None
    assert [i["id"] for i in widget.get("/v1/inbox/notifications").json()["items"]] == list(reversed(ids))
    with acme.activate():
        assert InboxItem.objects.filter(archived_at__isnull=True).count() == 3


def test_server_read_all_marks_only_that_subscriber(acme: Org) -> None:
    for i in range(3):
        _send(acme, ["ada"], f"n{i}")
    for_bob = _send(acme, ["bob"], "bob's")
    api = server_api(acme)
    done = api.post("/v1/subscribers/ada/notifications/read-all")
    assert done.status_code == 200 and done.json() == {"marked": 3, "unread_count": 0}
    assert api.post("/v1/subscribers/ada/notifications/read-all").json() == {"marked": 0, "unread_count": 0}
    assert widget_api(acme, "bob").get("/v1/inbox/unread-count").json() == {"count": 1}
    with acme.activate():
        assert InboxItem.objects.get(message_id=for_bob).read_at is None
        assert InboxItem.objects.filter(subscriber__external_id="ada", read_at__isnull=True).count() == 0


def test_server_preferences_get_and_put_and_sends_respect_them(acme: Org) -> None:
    api = server_api(acme)
    assert api.get("/v1/subscribers/ada/preferences").status_code == 404  # not a subscriber yet
    saved = api.put("/v1/subscribers/ada/preferences", {"categories": {"marketing": False, "billing": True}})
    assert saved.status_code == 200 and saved.json() == {"categories": {"billing": True, "marketing": False}}
    assert api.get("/v1/subscribers/ada/preferences").json() == {"categories": {"billing": True, "marketing": False}}
    # The widget reads what the backend set, and the other way round.
    assert widget_api(acme, "ada").get("/v1/inbox/preferences").json() == saved.json()
    widget_api(acme, "ada").put("/v1/inbox/preferences", {"categories": {"billing": False}})
    assert api.get("/v1/subscribers/ada/preferences").json()["categories"] == {"billing": False, "marketing": False}
    sent = api.post("/v1/notifications", {"to": ["ada"], "title": "Sale", "category": "marketing"})
    assert sent.json()["recipients"] == 0


def test_server_inbox_actions_refuse_bad_input(acme: Org) -> None:
    message = _send(acme, ["ada"])
    _send(acme, ["bob"])
    api = server_api(acme)
    cases = [
        # An unknown subscriber, an unknown message, a message of another subscriber, a malformed message id.
        (f"/v1/subscribers/nobody/notifications/{message}/read", 404, "not-found"),
        (f"/v1/subscribers/ada/notifications/{uuid.uuid4()}/read", 404, "not-found"),
        (f"/v1/subscribers/bob/notifications/{message}/archive", 404, "not-found"),
        ("/v1/subscribers/ada/notifications/not-a-uuid/unread", 404, "not-found"),
        ("/v1/subscribers/nobody/notifications/read-all", 404, "not-found"),
        (f"/v1/subscribers/ada/notifications/{'x' * 65}/read", 422, "validation-error"),
        (f"/v1/subscribers/{'a' * 256}/notifications/{message}/read", 422, "validation-error"),
    ]
    for path, status, kind in cases:
        response = api.post(path)
        assert response.status_code == status, (path, response.content)
        assert problem_type(response) == kind
    assert api.post(f"/v1/subscribers/ada/notifications/{message}/delete").status_code == 404
    for body in ({"categories": {"bad key": False}}, {"categories": {"promo": 0}}, {"categories": {}, "x": 1}, {}):
        response = api.put("/v1/subscribers/ada/preferences", body)
        assert response.status_code == 422 and problem_type(response) == "validation-error", body
    bad_json = api.call("PUT", "/v1/subscribers/ada/preferences", raw=b"{nope")
    assert bad_json.status_code == 400 and problem_type(bad_json) == "invalid-json"
    with acme.activate():
        assert not InboxItem.objects.filter(read_at__isnull=False).exists()
        assert not InboxItem.objects.filter(archived_at__isnull=False).exists()
        assert not Preference.objects.exists()
        assert not Subscriber.objects.filter(external_id="nobody").exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/subscribers/ada/notifications/{message}/read"),
        ("POST", "/v1/subscribers/ada/notifications/read-all"),
        ("GET", "/v1/subscribers/ada/preferences"),
        ("PUT", "/v1/subscribers/ada/preferences"),
    ],
)
def test_server_inbox_actions_refuse_publishable_and_missing_keys(acme: Org, method: str, path: str) -> None:
    message = _send(acme, ["ada"])
    body = {"categories": {"promo": False}} if method == "PUT" else None
    url = path.format(message=message)
    publishable = Api(acme.publishable_key).call(method, url, body)
    assert publishable.status_code == 401 and problem_type(publishable) == "publishable-key-not-allowed"
    anonymous = Api(None).call(method, url, body)
    assert anonymous.status_code == 401 and problem_type(anonymous) == "authentication-required"
    # The widget's credentials do not open the server routes either.
    widget = widget_api(acme, "ada").call(method, url, body)
    assert widget.status_code == 401
    with acme.activate():
        assert InboxItem.objects.get(message_id=message).read_at is None
        assert not Preference.objects.exists()


def test_server_inbox_post_replays_with_idempotency_key(acme: Org) -> None:
    message = _send(acme, ["ada"])
    api = server_api(acme)
    path = f"/v1/subscribers/ada/notifications/{message}/read"
    # raw=b"": an empty body (the test client would otherwise send an empty multipart form).
    first = api.call("POST", path, raw=b"", **{"Idempotency-Key": "read-1"})
    api.post(path.replace("/read", "/unread"))
    again = api.call("POST", path, raw=b"", **{"Idempotency-Key": "read-1"})
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    with acme.activate():  # the replay wrote nothing: the item stays unread
        assert InboxItem.objects.get(message_id=message).read_at is None


async def test_a_server_side_read_reaches_the_subscribers_open_sockets(acme: Org, herald_server: HeraldServer) -> None:
    """The server routes call the widget's services, so the subscriber's tabs hear of it at once."""

    def send() -> str:
        try:
            return _send(acme, ["live"])
        finally:
            connection.close()  # back to the pool: this thread is not Django's

    message = await sync_to_async(send)()

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
    headers = {"Authorization": f"Bearer {acme.secret_key}"}
    async with httpx.AsyncClient(base_url=herald_server.url, timeout=20, headers=headers) as client:
        read = await client.post(f"/v1/subscribers/live/notifications/{message}/read")
        assert read.status_code == 200, read.text
        event = await asyncio.wait_for(layer.receive(channel), 10)
        assert event["type"] == "inbox.update" and event["notification"]["id"] == message
        assert event["notification"]["read_at"] is not None and event["unread_count"] == 0
        await sync_to_async(send)()
        assert (await asyncio.wait_for(layer.receive(channel), 10))["type"] == "notification.new"
        done = await client.post("/v1/subscribers/live/notifications/read-all")
        assert done.json() == {"marked": 1, "unread_count": 0}
        event = await asyncio.wait_for(layer.receive(channel), 10)
        assert event["type"] == "inbox.update" and event["all_read"] is True
        prefs = await client.put("/v1/subscribers/live/preferences", json={"categories": {"promo": False}})
        assert prefs.status_code == 200
        event = await asyncio.wait_for(layer.receive(channel), 10)
        assert event["type"] == "preferences.changed" and event["opted_out"] == ["promo"]
