"""The activity pages: who may see them, what they show, bad input, no N+1."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.models import InboxItem
from notifications.selectors import cursor_encode
from tests.conftest import Org
from tests.portal.conftest import Team, client_for
from tests.portal.send_support import portal_send

VIEWERS = ["owner", "admin", "developer", "viewer"]


def send(org: Org, **fields: Any) -> str:
    return portal_send(org, **fields).id


def url(team: Team, path: str = "activity/", org: Org | None = None) -> str:
    return f"/o/{(org or team.acme).organization.slug}/{path}"


@pytest.mark.parametrize("persona", VIEWERS)
def test_every_member_sees_the_activity_with_receipts(team: Team, persona: str) -> None:
    message_id = send(team.acme, to=["ann", "ben"], title="Deploy finished", category="ops")
    with team.acme.activate():
        InboxItem.objects.filter(message_id=message_id, subscriber__external_id="ann").update(
            delivered_at=timezone.now(), read_at=timezone.now()
        )
    response = client_for(team.user(persona)).get(url(team))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Deploy finished" in html and 'data-recipient="ann"' in html and 'data-recipient="ben"' in html
    assert '<dd data-count="delivered">1</dd>' in html and '<dd data-count="read">1</dd>' in html
    assert '<dd data-count="recipients">2</dd>' in html
    detail = client_for(team.user(persona)).get(url(team, f"activity/{message_id}"))
    assert detail.status_code == 200 and "Deploy finished" in detail.content.decode()


def test_anonymous_is_sent_to_sign_in(team: Team) -> None:
    message_id = send(team.acme, to=["ann"])
    for path in ("activity/", f"activity/{message_id}"):
        response = client_for(None).get(url(team, path))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_globex_member_gets_404_even_with_a_real_message_id(team: Team) -> None:
    message_id = send(team.acme, to=["ann"], title="Acme secret")
    client = client_for(team.globex_member)
    for path in ("activity/", f"activity/{message_id}"):
        response = client.get(url(team, path))
        assert response.status_code == 404
        assert "Acme secret" not in response.content.decode()
    # Under Globex's own slug, Acme's message id is unknown too.
    assert client.get(url(team, f"activity/{message_id}", org=team.globex)).status_code == 404
    assert client.get(url(team, org=team.globex)).status_code == 200
    assert "Acme secret" not in client.get(url(team, org=team.globex)).content.decode()


def test_unknown_and_malformed_message_ids_are_404(team: Team) -> None:
    client = client_for(team.owner)
    assert client.get(url(team, "activity/00000000-0000-0000-0000-000000000000")).status_code == 404
    assert client.get(url(team, "activity/not-a-uuid")).status_code == 404


def test_filters_narrow_the_list(team: Team) -> None:
    send(team.acme, to=["ann"], title="For Ann", category="billing")
    send(team.acme, to=["ben"], title="For Ben", category="security")
    client = client_for(team.viewer)
    html = client.get(url(team), {"subscriber": "ann"}).content.decode()
    assert "For Ann" in html and "For Ben" not in html
    html = client.get(url(team), {"category": "security"}).content.decode()
    assert "For Ben" in html and "For Ann" not in html
    today = timezone.now().date().isoformat()
    html = client.get(url(team), {"since": today, "until": today}).content.decode()
    assert "For Ann" in html and "For Ben" in html
    html = client.get(url(team), {"until": "2000-01-01"}).content.decode()
    assert "For Ann" not in html and "No messages" in html


@pytest.mark.parametrize(
    "query",
    [
        {"since": "not-a-date"},
        {"since": "2026-02-02", "until": "2026-02-01"},
        {"cursor": "garbage"},
        {"subscriber": "x" * 300},
    ],
)
def test_bad_filters_answer_400_with_the_form(team: Team, query: dict[str, str]) -> None:
    send(team.acme, to=["ann"], title="Still here")
    response = client_for(team.owner).get(url(team), query)
    assert response.status_code == 400
    assert "errorlist" in response.content.decode()


def test_a_cursor_of_another_list_is_refused(team: Team) -> None:
    response = client_for(team.owner).get(url(team), {"cursor": cursor_encode("inbox", 5)})
    assert response.status_code == 400


def test_older_messages_follow_the_cursor(team: Team) -> None:
    for i in range(27):
        send(team.acme, to=["ann"], title=f"Note {i:02d}")
    client = client_for(team.owner)
    first = client.get(url(team)).content.decode()
    assert "Note 26" in first and "Note 02" in first and "Note 01" not in first
    assert "Older messages" in first
    cursor = first.split('href="?cursor=')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(url(team) + "?cursor=" + cursor).content.decode()
    assert "Note 01" in second and "Note 00" in second and "Note 02" not in second
    assert "Older messages" not in second


def test_the_list_page_costs_the_same_queries_for_3_or_25_messages(team: Team) -> None:
    client = client_for(team.owner)
    for i in range(3):
        send(team.acme, to=[f"a{i}", f"b{i}"])
    client.get(url(team))

    with CaptureQueriesContext(connection) as few:
        assert client.get(url(team)).status_code == 200
    for i in range(22):
        send(team.acme, to=[f"c{i}", f"d{i}", f"e{i}"])
    with CaptureQueriesContext(connection) as many:
        assert client.get(url(team)).status_code == 200

    def counted(context: CaptureQueriesContext) -> int:
        # django-tenants sets the search path again when the previous query ran elsewhere (the sends above).
        return sum(1 for q in context.captured_queries if not q["sql"].startswith("SET search_path"))

    assert counted(many) == counted(few) <= 10
