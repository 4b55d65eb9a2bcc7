"""The overage billed through Stripe's meter is the ledger's, the API's and the CSV's figure, and a count over
the message rows: one organisation on Pro, 15 sends past its 1,000,000 a month, all on one day."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta

import httpx
from django.db import connection
from django.utils import timezone

from billing.metering import overage_quantity_source, overage_report
from billing.models import UsageDay
from billing.plans import plan_for
from billing.services import stripe_customer_ensure
from notifications.models import Message
from tenants.services import organization_plan_change
from tests.billing.conftest import StripeServers
from tests.billing.support import messages_insert
from tests.conftest import Org
from tests.portal.conftest import client_for
from tests.servers import HeraldServer

OVER = 15


def test_the_meter_bills_what_the_ledger_the_api_the_csv_and_the_rows_say(
    stripe_env: StripeServers, acme: Org, owner: object, herald_server: HeraldServer
) -> None:
    organization_plan_change(organization=acme.organization, plan="pro")
    limit = plan_for("pro").monthly_notifications
    assert limit is not None
    # All of it yesterday, so the day's overage does not depend on where in the month the test runs.
    day = timezone.now().date() - timedelta(days=1)
    messages_insert(acme, limit + OVER, at=datetime.combine(day, time(12), tzinfo=UTC))
    start = datetime.combine(day, time(0), tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT count(*) FROM "{acme.schema_name}".{Message._meta.db_table}
                WHERE created_at >= %s AND created_at < %s""",
            [start, start + timedelta(days=1)],
        )
        (rows,) = cursor.fetchone()
    truth = rows - limit
    assert truth == OVER

    stripe_customer_ensure(organization=acme.organization)
    source = overage_quantity_source()
    assert source is not None  # registered by BillingConfig.ready: the ledger's figure
    report = overage_report(organization=acme.organization, period_start=day, quantity=source(acme.organization, day))
    assert report is not None and report.quantity == truth
    sent = [e for e in stripe_env.meter_events()["events"] if e["identifier"] == report.identifier]
    assert [int(e["payload"]["value"]) for e in sent] == [truth]

    assert UsageDay.objects.get(organization=acme.organization, day=day).overage == truth
    api = httpx.get(
        herald_server.url + "/v1/usage",
        params={"from": day.isoformat(), "to": day.isoformat()},
        headers={"Authorization": f"Bearer {acme.secret_key}"},
        timeout=30,
    )
    assert api.status_code == 200, api.text
    assert [d["overage"] for d in api.json()["days"] if d["date"] == day.isoformat()] == [truth]
    download = client_for(owner).get(f"/o/{acme.organization.slug}/usage.csv")  # type: ignore[arg-type]
    table = {row["date"]: row for row in csv.DictReader(io.StringIO(download.content.decode()))}
    assert int(table[day.isoformat()]["overage"]) == truth
