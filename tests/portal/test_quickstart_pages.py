"""The quickstart: send a test through the send service, the preview key, the snippets; personas, bad input."""

from __future__ import annotations

import re

import pytest

from notifications.models import InboxItem, Message
from notifications.widget import widget_integrity
from tenants.models import ApiKey
from tests.conftest import Org
from tests.portal.conftest import Team, client_for


def url(team: Team, path: str = "quickstart/", org: Org | None = None) -> str:
    return f"/o/{(org or team.acme).organization.slug}/{path}"


@pytest.mark.parametrize("persona", ["owner", "admin", "developer", "viewer"])
def test_every_member_sees_snippets_with_a_secret_key_placeholder_and_the_sri_hash(team: Team, persona: str) -> None:
    response = client_for(team.user(persona)).get(url(team))
    assert response.status_code == 200
    html = response.content.decode()
    assert widget_integrity() in html
    assert "$HERALD_SECRET_KEY" in html and "sk_live_" not in html.replace("sk_live_…", "")
    assert "http://testserver/v1/notifications" in html
    assert ("Send test notification" in html) == (persona != "viewer")
    assert ("Start the live preview" in html) == (persona != "viewer")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "ws://testserver" in policy
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "no inline script"


def test_sending_a_test_goes_through_the_send_service(team: Team) -> None:
    client = client_for(team.developer)
    response = client.post(url(team, "quickstart/send"), {"subscriber_id": "u_7", "title": "Test 1", "body": "Hi"})
    assert response.status_code == 302 and response["Location"].endswith("?subscriber=u_7")
    with team.acme.activate():
        message = Message.objects.get(title="Test 1")
        assert message.body == "Hi" and message.category == "test" and message.recipient_count == 1
        assert InboxItem.objects.filter(message=message, subscriber__external_id="u_7").exists()
        assert message.seq >= 1


def test_htmx_send_answers_a_fragment(team: Team) -> None:
    client = client_for(team.owner)
    response = client.post(
        url(team, "quickstart/send"), {"subscriber_id": "u_8", "title": "Via htmx"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<div id="test-result"') and "u_8" in html and "<html" not in html


@pytest.mark.parametrize(
    "data",
    [
        {"subscriber_id": "", "title": "No one"},
        {"subscriber_id": "x" * 256, "title": "Too long an id"},
        {"subscriber_id": "u_9", "title": ""},
        {"subscriber_id": "u_9", "title": "t" * 501},
    ],
)
def test_bad_test_sends_are_refused_and_send_nothing(team: Team, data: dict[str, str]) -> None:
    client = client_for(team.owner)
    assert client.post(url(team, "quickstart/send"), data).status_code == 400
    assert client.post(url(team, "quickstart/send"), data, HTTP_HX_REQUEST="true").status_code == 400
    with team.acme.activate():
        assert not Message.objects.exists()


def test_a_viewer_cannot_send_or_start_the_preview(team: Team) -> None:
    client = client_for(team.viewer)
    assert client.post(url(team, "quickstart/send"), {"subscriber_id": "u", "title": "t"}).status_code == 403
    assert client.post(url(team, "quickstart/preview")).status_code == 403
    with team.acme.activate():
        assert not Message.objects.exists()
    assert not ApiKey.objects.filter(organization=team.acme.organization, name="Portal preview").exists()


def test_a_globex_member_gets_404_and_sends_nothing_to_acme(team: Team) -> None:
    client = client_for(team.globex_member)
    assert client.get(url(team)).status_code == 404
    assert client.post(url(team, "quickstart/send"), {"subscriber_id": "u", "title": "t"}).status_code == 404
    assert client.post(url(team, "quickstart/preview")).status_code == 404
    with team.acme.activate():
        assert not Message.objects.exists()


def test_anonymous_is_sent_to_sign_in(team: Team) -> None:
    client = client_for(None)
    for method, path in (("get", "quickstart/"), ("post", "quickstart/send"), ("post", "quickstart/preview")):
        response = getattr(client, method)(url(team, path))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_preview_key_allows_this_origin_and_stays_with_this_session(team: Team) -> None:
    client = client_for(team.developer)
    assert client.post(url(team, "quickstart/preview")).status_code == 302
    key = ApiKey.objects.get(organization=team.acme.organization, name="Portal preview")
    assert key.kind == "publishable" and key.allowed_origins == ["http://testserver"]
    html = client.get(url(team), {"subscriber": "u_7"}).content.decode()
    match = re.search(
        r'<herald-inbox publishable-key="(pk_live_\w+)" subscriber-id="u_7" subscriber-hash="([0-9a-f]{64})"', html
    )
    assert match, "the widget is signed in as the chosen subscriber"
    assert match.group(1).startswith(key.prefix)
    assert f"publishable-key=&quot;{match.group(1)}&quot;" in html.split('id="snippet-widget"')[1]  # the snippet too
    # Another session of another member does not see this session's key.
    other = client_for(team.owner).get(url(team)).content.decode()
    assert match.group(1) not in other and "<herald-inbox publishable-key" not in other
    # Revoked: the preview stops offering it.
    from tenants.services import api_key_revoke

    api_key_revoke(api_key=key)
    assert "<herald-inbox publishable-key" not in client.get(url(team)).content.decode()
