"""A valid key of another organisation finds nothing: 404 (never 403), and changes nothing."""

from __future__ import annotations

import pytest

from notifications.models import InboxItem, Message, Preference, Subscriber, Topic, TopicSubscription
from tests.conftest import Org
from tests.notifications.api_support import problem_type, server_api, widget_api


@pytest.fixture
def acme_data(acme: Org) -> dict[str, str]:
    api = server_api(acme)
    api.put("/v1/subscribers/acme-user", {"name": "Acme User"})
    api.put("/v1/topics/acme-topic", {})
    api.post("/v1/topics/acme-topic/subscribers", {"subscriber_ids": ["acme-user"]})
    sent = api.post("/v1/notifications", {"to": ["acme-user"], "title": "acme secret"})
    return {"message": sent.json()["id"]}


def _acme_unchanged(acme: Org, message: str) -> None:
    with acme.activate():
        assert Subscriber.objects.filter(external_id="acme-user", name="Acme User").exists()
        assert Topic.objects.filter(key="acme-topic").exists()
        assert TopicSubscription.objects.count() == 1
        assert Message.objects.count() == 1
        assert InboxItem.objects.filter(message_id=message, read_at__isnull=True, archived_at__isnull=True).count() == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/subscribers/acme-user", None),
        ("DELETE", "/v1/subscribers/acme-user", None),
        ("GET", "/v1/subscribers/acme-user/notifications", None),
        ("POST", "/v1/subscribers/acme-user/tokens", {}),
        ("GET", "/v1/topics/acme-topic/subscribers", None),
        ("POST", "/v1/topics/acme-topic/subscribers", {"subscriber_ids": ["intruder"]}),
        ("DELETE", "/v1/topics/acme-topic/subscribers/acme-user", None),
        ("POST", "/v1/notifications", {"topic": "acme-topic", "title": "x"}),
        ("GET", "/v1/messages/{message}", None),
        ("POST", "/v1/subscribers/acme-user/notifications/{message}/read", None),
        ("POST", "/v1/subscribers/acme-user/notifications/{message}/unread", None),
        ("POST", "/v1/subscribers/acme-user/notifications/{message}/archive", None),
        ("POST", "/v1/subscribers/acme-user/notifications/{message}/unarchive", None),
        ("POST", "/v1/subscribers/acme-user/notifications/read-all", None),
        ("GET", "/v1/subscribers/acme-user/preferences", None),
        ("GET", "/v1/subscribers/acme-user/topics", None),
        ("GET", "/v1/topics/acme-topic", None),
        ("DELETE", "/v1/topics/acme-topic", None),
    ],
)
def test_other_organisations_key_gets_404(
    acme: Org, globex: Org, acme_data: dict[str, str], method: str, path: str, body: dict | None
) -> None:
    response = server_api(globex).call(method, path.format(**acme_data), body)
    assert response.status_code == 404, response.content
    assert problem_type(response) == "not-found"
    _acme_unchanged(acme, acme_data["message"])


def test_other_organisations_lists_and_usage_show_none_of_acme(
    acme: Org, globex: Org, acme_data: dict[str, str]
) -> None:
    api = server_api(globex)
    assert api.get("/v1/subscribers").json()["items"] == []
    assert api.get("/v1/topics").json()["items"] == []
    usage = api.get("/v1/usage").json()
    assert usage["messages"] == 0 and usage["notifications"] == 0
    # Writing under the same ids creates globex's own rows, never touches acme's.
    assert api.put("/v1/subscribers/acme-user", {"name": "Globex's"}).status_code == 200
    assert api.put("/v1/topics/acme-topic", {"name": "Globex's"}).status_code == 200
    sent = api.post("/v1/notifications", {"to": ["acme-user"], "title": "globex"})
    assert sent.status_code == 202 and sent.json()["seq"] == 1
    # Preferences set for the same id are globex's subscriber's; acme's stays without any.
    assert api.put("/v1/subscribers/acme-user/preferences", {"categories": {"promo": False}}).status_code == 200
    assert [t["key"] for t in api.get("/v1/subscribers/acme-user/topics").json()["items"]] == []
    _acme_unchanged(acme, acme_data["message"])
    with globex.activate():
        assert Subscriber.objects.get(external_id="acme-user").name == "Globex's"
    with acme.activate():
        assert not Preference.objects.exists()


def test_other_organisations_batch_cannot_reach_acme_topics(acme: Org, globex: Org, acme_data: dict[str, str]) -> None:
    response = server_api(globex).post(
        "/v1/notifications/batch", {"notifications": [{"topic": "acme-topic", "title": "x"}]}
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == 404
    _acme_unchanged(acme, acme_data["message"])


def test_widget_of_another_organisation_sees_none_of_acme(acme: Org, globex: Org, acme_data: dict[str, str]) -> None:
    acme_widget = widget_api(acme, "acme-user")
    acme_widget.put("/v1/inbox/preferences", {"categories": {"promo": False}})
    globex_widget = widget_api(globex, "acme-user", origin="http://app.globex.test")
    assert globex_widget.get("/v1/inbox/preferences").json() == {"categories": {}}
    assert globex_widget.get("/v1/inbox/notifications").json()["items"] == []
    for action in ("read", "unread", "archive"):
        response = globex_widget.post(f"/v1/inbox/notifications/{acme_data['message']}/{action}")
        assert response.status_code == 404 and problem_type(response) == "not-found"
    assert globex_widget.post("/v1/inbox/read-all").json() == {"marked": 0, "unread_count": 0}
    _acme_unchanged(acme, acme_data["message"])
    assert acme_widget.get("/v1/inbox/unread-count").json() == {"count": 1}
