"""The usage page: 30 days of messages and notifications from usage_daily, as an SVG chart and a table."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import Message
from tests.conftest import Org
from tests.portal.conftest import Team, client_for
from tests.portal.send_support import portal_send


def url(org: Org) -> str:
    return f"/o/{org.organization.slug}/usage/"


def send(org: Org, to: list[str], days_ago: int = 0) -> None:
    result = portal_send(org, title="u", to=to)
    with org.activate():
        if days_ago:
            Message.objects.filter(pk=result.id).update(created_at=timezone.now() - timedelta(days=days_ago))


@pytest.mark.parametrize("persona", ["owner", "admin", "developer", "viewer"])
def test_members_see_30_days_as_a_chart_and_a_table(team: Team, persona: str) -> None:
    send(team.acme, ["a", "b", "c"])
    send(team.acme, ["a"])
    send(team.acme, ["a", "b"], days_ago=3)
    send(team.acme, ["a"], days_ago=45)  # outside the window
    response = client_for(team.user(persona)).get(url(team.acme))
    assert response.status_code == 200
    html = response.content.decode()
    today = timezone.now().date()
    three_ago = (today - timedelta(days=3)).isoformat()
    assert html.count('<rect class="bar"') == 30
    assert html.count("<tr data-day=") == 30
    assert f'<tr data-day="{today.isoformat()}"><td>{today.isoformat()}</td><td>2</td><td>4</td></tr>' in html
    assert f'<tr data-day="{three_ago}"><td>{three_ago}</td><td>1</td><td>2</td></tr>' in html
    assert '<p class="stat" id="total-messages">3</p>' in html
    assert '<p class="stat" id="total-notifications">6</p>' in html
    assert f'data-day="{today.isoformat()}" data-notifications="4"' in html


def test_usage_counts_only_this_organisation(team: Team) -> None:
    send(team.globex, ["x", "y", "z"])
    html = client_for(team.owner).get(url(team.acme)).content.decode()
    assert '<p class="stat" id="total-notifications">0</p>' in html


def test_a_globex_member_gets_404_and_anonymous_signs_in(team: Team) -> None:
    assert client_for(team.globex_member).get(url(team.acme)).status_code == 404
    response = client_for(None).get(url(team.acme))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_usage_is_read_only(team: Team) -> None:
    assert client_for(team.owner).post(url(team.acme)).status_code == 405
