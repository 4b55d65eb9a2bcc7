"""The usage ledger: every figure from durable rows, the same however often the rollup runs (Redis cleared
or not), and the same in GET /v1/usage, the portal's page, its CSV and the ledger as a count over the inbox
rows of the same days. Test data is recorded and never billed."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing.models import SubscriberActivity, UsageDay
from billing.plans import plan_for
from billing.usage import _overage, usage_days, usage_rollup
from notifications.models import InboxItem, Message
from tenants.ratelimit import redis_client
from tests.billing.support import inbox_rows_per_day
from tests.conftest import Org
from tests.notifications.realtime_support import api_send, auth_frame, open_socket, signing_secret
from tests.portal.conftest import client_for
from tests.portal.send_support import portal_send
from tests.servers import HeraldServer

FIGURES = ("messages", "notifications", "live_deliveries", "active_subscribers", "peak_connections", "overage")


def _send(org: Org, to: list[str], *, days_ago: int = 0) -> None:
    result = portal_send(org, title="ledger", to=to)
    if days_ago:
        at = timezone.now() - timedelta(days=days_ago)
        with org.activate():
            Message.objects.filter(pk=result.id).update(created_at=at)
            InboxItem.objects.filter(message_id=result.id).update(created_at=at)


def _figures(row: UsageDay) -> tuple[int, ...]:
    return tuple(getattr(row, name) for name in FIGURES)


def _delivered_today(org: Org) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with org.activate():
            count = InboxItem.objects.filter(delivered_at__isnull=False).count()
        if count:
            return count
        time.sleep(0.1)
    return 0


def _active_recorded(org: Org) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        count = SubscriberActivity.objects.filter(organization=org.organization).count()
        if count:
            return count
        time.sleep(0.1)
    return 0


async def test_the_rollup_gets_the_same_figures_every_time_even_after_redis_is_cleared(
    acme: Org, herald_server: HeraldServer
) -> None:
    secret = await sync_to_async(signing_secret)(acme)
    client = await open_socket(herald_server, acme)
    try:
        await client.send(auth_frame(secret, "ada"))
        await client.recv_type("ready")
        await api_send(herald_server, acme, to=["ada", "bob"])
        await client.recv_type("notification")
    finally:
        await client.close()
    await api_send(herald_server, acme, to=["bob", "cy", "di"])
    assert await sync_to_async(_delivered_today)(acme) == 1  # ada's, live; bob had no socket
    assert await sync_to_async(_active_recorded)(acme) == 1  # ada had a socket
    today = timezone.now().date()

    def roll() -> tuple[int, ...]:
        return _figures(usage_rollup(acme.organization, today))

    first = await sync_to_async(roll)()
    assert first[:4] == (2, 5, 1, 1)  # 2 sends, 5 recipients, 1 live delivery, 1 subscriber with a socket
    assert first[4] >= 1 and first[5] == 0
    assert await sync_to_async(roll)() == first
    await sync_to_async(redis_client().flushdb)()
    assert await sync_to_async(roll)() == first
    assert await sync_to_async(UsageDay.objects.filter(organization=acme.organization).count)() == 1


def test_usage_figures_agree_in_the_api_the_portal_the_csv_and_the_ledger(
    acme: Org, owner: object, herald_server: HeraldServer
) -> None:
    _send(acme, ["a", "b", "c"])
    _send(acme, ["a"])
    _send(acme, ["a", "b"], days_ago=3)
    _send(acme, ["a", "b", "c", "d"], days_ago=40)  # outside the 30 days shown
    today = timezone.now().date()
    start = today - timedelta(days=29)
    truth = inbox_rows_per_day(acme, start, today)
    assert sum(truth.values()) == 6 and truth[(today - timedelta(days=3)).isoformat()] == 2

    api = httpx.get(herald_server.url + "/v1/usage", headers={"Authorization": f"Bearer {acme.secret_key}"}, timeout=20)
    assert api.status_code == 200, api.text
    assert {d["date"]: d["notifications"] for d in api.json()["days"]} == truth

    portal = client_for(owner)  # type: ignore[arg-type]
    html = portal.get(f"/o/{acme.organization.slug}/usage/").content.decode()
    rows = re.findall(r'<tr data-day="([\d-]+)"><td>[\d-]+</td><td>(\d+)</td><td>(\d+)</td>', html)
    assert {day: int(recipients) for day, _, recipients in rows} == truth

    download = portal.get(f"/o/{acme.organization.slug}/usage.csv")
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert list(table[0]) == ["date", *FIGURES]
    assert {row["date"]: int(row["notifications"]) for row in table} == truth

    for day, count in truth.items():
        if count:
            row = usage_rollup(acme.organization, timezone.datetime.fromisoformat(day).date())
            assert row.notifications == count, day


def test_test_data_is_recorded_and_never_billed(acme: Org, settings: Any) -> None:
    pro = plan_for("pro")
    assert pro.monthly_notifications is not None
    # Overage of a day: what goes past the month's quota that day, only on plans that may go over.
    assert _overage(pro, pro.monthly_notifications - 5, 10, test=False) == 5
    assert _overage(pro, pro.monthly_notifications + 5, 10, test=False) == 10
    assert _overage(pro, pro.monthly_notifications + 5, 10, test=True) == 0
    assert _overage(plan_for("free"), 20_000, 10, test=False) == 0
    _send(acme, ["a"])
    today = timezone.now().date()
    assert usage_rollup(acme.organization, today).test is False
    settings.HERALD_BILLING_TEST_ORGANIZATIONS = [acme.organization.slug]
    row = usage_rollup(acme.organization, today)
    assert row.test is True and row.overage == 0 and row.messages == 1


def test_the_rollup_command_names_its_day_and_organisation(acme: Org, capsys: pytest.CaptureFixture[str]) -> None:
    _send(acme, ["a", "b"])
    today = timezone.now().date()
    call_command("usage_rollup", "--day", today.isoformat(), "--org", acme.organization.slug)
    out = capsys.readouterr().out
    assert f"{acme.organization.slug} {today}: messages=1 notifications=2" in out
    assert "rolled up 1 organisation(s)" in out
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("usage_rollup", "--day", "yesterday")
    with pytest.raises(CommandError, match="future"):
        call_command("usage_rollup", "--day", (today + timedelta(days=2)).isoformat())
    with pytest.raises(CommandError, match="no organisation"):
        call_command("usage_rollup", "--org", "no-such-org")


def test_a_day_past_retention_keeps_its_ledger_figures_when_its_rows_are_deleted(acme: Org) -> None:
    free = plan_for("free")
    day = timezone.now().date() - timedelta(days=free.retention_days + 3)
    _send(acme, ["a", "b"], days_ago=free.retention_days + 3)
    row = usage_rollup(acme.organization, day)
    assert (row.messages, row.notifications) == (1, 2)
    with acme.activate():  # what the retention job does to that day
        Message.objects.all().delete()
    again = usage_rollup(acme.organization, day)
    assert (again.messages, again.notifications, again.computed_at) == (1, 2, row.computed_at)
    (shown,) = usage_days(acme.organization, day, day)
    assert (shown.messages, shown.notifications) == (1, 2)
