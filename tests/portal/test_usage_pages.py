"""The usage page: the plan against its limits and 30 days of every ledger figure (billing.usage) as SVG charts,
a table and a CSV download; every member may see it, no one else."""

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
    assert html.count('<rect class="bar"') == 30 * 6  # one chart per ledger figure
    for figure in ("messages", "notifications", "live_deliveries", "active_subscribers", "peak_connections"):
        assert f'data-figure="{figure}"' in html
    assert html.count("<tr data-day=") == 30
    assert f'<tr data-day="{today.isoformat()}"><td>{today.isoformat()}</td><td>2</td><td>4</td>' in html
    assert f'<tr data-day="{three_ago}"><td>{three_ago}</td><td>1</td><td>2</td>' in html
    assert '<p class="stat" id="total-messages">3</p>' in html
    assert '<p class="stat" id="total-notifications">6</p>' in html
    assert f'data-day="{today.isoformat()}" data-value="4"' in html
    # Against the plan: this month's sends of Free's 10,000 (the one 45 days ago is last month's or older).
    this_month = 2 + (1 if (today - timedelta(days=3)).month == today.month else 0)
    assert f'<meter min="0" max="10000" value="{this_month}"' in html
    csv_download = client_for(team.user(persona)).get(url(team.acme).replace("usage/", "usage.csv"))
    assert csv_download.status_code == 200
    assert f"{today.isoformat()},2,4," in csv_download.content.decode()


def test_usage_counts_only_this_organisation(team: Team) -> None:
    send(team.globex, ["x", "y", "z"])
    html = client_for(team.owner).get(url(team.acme)).content.decode()
    assert '<p class="stat" id="total-notifications">0</p>' in html


@pytest.mark.parametrize("path", ["usage/", "usage.csv"])
def test_a_globex_member_gets_404_and_anonymous_signs_in(team: Team, path: str) -> None:
    target = f"/o/{team.acme.organization.slug}/{path}"
    assert client_for(team.globex_member).get(target).status_code == 404
    response = client_for(None).get(target)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client_for(team.owner).get(f"/o/no-such-org/{path}").status_code == 404


def test_usage_is_read_only(team: Team) -> None:
    assert client_for(team.owner).post(url(team.acme)).status_code == 405
    assert client_for(team.owner).post(f"/o/{team.acme.organization.slug}/usage.csv").status_code == 405
