"""The subscriber pages: search, a subscriber's page, erasure with confirmation; personas and bad input."""

from __future__ import annotations

import pytest

from notifications import services
from notifications.models import InboxItem, Subscriber
from tests.conftest import Org
from tests.portal.conftest import Team, client_for
from tests.portal.send_support import portal_send


def subscriber(org: Org, external_id: str, **fields: str) -> int:
    with org.activate():
        return services.subscriber_upsert(external_id=external_id, fields=fields)[0].pk


def url(team: Team, path: str = "subscribers/", org: Org | None = None) -> str:
    return f"/o/{(org or team.acme).organization.slug}/{path}"


@pytest.mark.parametrize("persona", ["owner", "admin", "developer", "viewer"])
def test_members_search_by_id_or_email_and_open_a_subscriber(team: Team, persona: str) -> None:
    pk = subscriber(team.acme, "user-42", email="dana@example.com", name="Dana")
    subscriber(team.acme, "robot-7")
    with team.acme.activate():
        topic, _ = services.topic_upsert(key="deploys", name="Deploys")
        services.topic_subscribers_add(organization_id=team.acme.organization.pk, topic=topic, external_ids=["user-42"])
        services.preferences_set(
            organization_id=team.acme.organization.pk, external_id="user-42", categories={"ads": False}
        )
    portal_send(team.acme, title="Welcome Dana", to=["user-42"])
    client = client_for(team.user(persona))
    by_email = client.get(url(team), {"q": "dana@"}).content.decode()
    assert "user-42" in by_email and "robot-7" not in by_email
    by_id = client.get(url(team), {"q": "robot"}).content.decode()
    assert "robot-7" in by_id and "user-42" not in by_id
    page = client.get(url(team, f"subscribers/{pk}"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Dana" in html and "dana@example.com" in html and "deploys" in html and "Welcome Dana" in html
    assert "opted out" in html and '<p class="stat" id="sockets-open">0</p>' in html
    assert ("Erase subscriber" in html) == (persona in ("owner", "admin"))


def test_anonymous_is_sent_to_sign_in(team: Team) -> None:
    pk = subscriber(team.acme, "ann")
    for path in ("subscribers/", f"subscribers/{pk}", f"subscribers/{pk}/erase"):
        response = client_for(None).get(url(team, path))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_globex_member_gets_404_even_with_a_guessed_subscriber_id(team: Team) -> None:
    pk = subscriber(team.acme, "acme-only-user")
    # Globex has a subscriber with the same pk, likely: its own, not Acme's.
    globex_pk = subscriber(team.globex, "globex-user")
    client = client_for(team.globex_member)
    for path in ("subscribers/", f"subscribers/{pk}", f"subscribers/{pk}/erase"):
        assert client.get(url(team, path)).status_code == 404
    assert client.post(url(team, f"subscribers/{pk}/erase")).status_code == 404
    own = client.get(url(team, f"subscribers/{globex_pk}", org=team.globex)).content.decode()
    assert "globex-user" in own and "acme-only-user" not in own
    listing = client.get(url(team, org=team.globex), {"q": "acme"}).content.decode()
    assert "acme-only-user" not in listing
    with team.acme.activate():
        assert Subscriber.objects.filter(pk=pk).exists()


def test_unknown_subscriber_is_404_and_a_bad_cursor_is_400(team: Team) -> None:
    client = client_for(team.owner)
    assert client.get(url(team, "subscribers/999999")).status_code == 404
    assert client.get(url(team, "subscribers/abc")).status_code == 404
    assert client.get(url(team), {"cursor": "nonsense"}).status_code == 400
    pk = subscriber(team.acme, "ann")
    assert client.get(url(team, f"subscribers/{pk}"), {"cursor": "nonsense"}).status_code == 404


@pytest.mark.parametrize("persona", ["developer", "viewer"])
def test_developers_and_viewers_cannot_erase(team: Team, persona: str) -> None:
    pk = subscriber(team.acme, "keep-me")
    client = client_for(team.user(persona))
    assert client.get(url(team, f"subscribers/{pk}/erase")).status_code == 403
    assert client.post(url(team, f"subscribers/{pk}/erase")).status_code == 403
    with team.acme.activate():
        assert Subscriber.objects.filter(pk=pk).exists()


@pytest.mark.parametrize("persona", ["owner", "admin"])
def test_erasure_asks_first_then_deletes_the_subscriber_and_inbox(team: Team, persona: str) -> None:
    pk = subscriber(team.acme, "erase-me")
    portal_send(team.acme, title="Bye", to=["erase-me", "stays"])
    client = client_for(team.user(persona))
    confirm = client.get(url(team, f"subscribers/{pk}/erase"))
    assert confirm.status_code == 200 and "cannot be undone" in confirm.content.decode()
    with team.acme.activate():
        assert Subscriber.objects.filter(pk=pk).exists()  # asking changes nothing
    done = client.post(url(team, f"subscribers/{pk}/erase"))
    assert done.status_code == 302 and done["Location"] == url(team)
    with team.acme.activate():
        assert not Subscriber.objects.filter(pk=pk).exists()
        assert not InboxItem.objects.filter(subscriber_id=pk).exists()
        assert InboxItem.objects.filter(subscriber__external_id="stays").count() == 1
    assert client.get(url(team, f"subscribers/{pk}")).status_code == 404


def test_erasure_is_a_post_with_csrf(team: Team) -> None:
    from django.test import Client

    pk = subscriber(team.acme, "csrf-check")
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="10.9.9.9")
    client.force_login(team.owner)
    assert client.post(url(team, f"subscribers/{pk}/erase")).status_code == 403
    with team.acme.activate():
        assert Subscriber.objects.filter(pk=pk).exists()
