"""Background jobs run by a real Procrastinate worker: retention, and dropping a deleted organisation's schema."""

from __future__ import annotations

from datetime import date, timedelta

from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing.metering import overage_quantity_source, overage_quantity_source_register
from billing.models import MeterReport
from billing.services import stripe_customer_ensure
from herald.tasks import deleted_schema_drop, idempotency_purge, retention_apply, upkeep_enqueue
from notifications.models import IdempotencyRecord, Message
from tenants.models import DeletedSchema, Organization
from tenants.services import organization_delete
from tests.billing.conftest import StripeServers
from tests.billing.jobs_support import jobs, run_worker_until_idle
from tests.conftest import Org, make_org
from tests.notifications.realtime_support import api_send, run_db, signing_secret, subscribe
from tests.servers import HeraldServer


def _backdate(org: Org, *, seqs: list[int], days: int) -> None:
    with tenant_context(org.organization):
        Message.objects.filter(seq__in=seqs).update(created_at=timezone.now() - timedelta(days=days))


def _message_seqs(org: Org) -> list[int]:
    with tenant_context(org.organization):
        return list(Message.objects.order_by("seq").values_list("seq", flat=True))


async def test_retention_deletes_past_the_plan_and_an_older_cursor_then_gets_reset_expired(
    herald_server: HeraldServer, acme: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    old = [await api_send(herald_server, acme, to=["rita"], title=f"old {i}") for i in range(2)]
    recent = await api_send(herald_server, acme, to=["rita"], title="recent")
    await run_db(_backdate, acme, seqs=[m["seq"] for m in old], days=8)  # Free keeps 7 days
    cursor = old[0]["seq"] - 1  # a client that saw none of them

    # Before the job, eight days is inside HERALD_INBOX_RETENTION_DAYS: everything is replayed.
    client, _, before = await subscribe(herald_server, acme, secret, "rita", cursor=cursor)
    assert [f["notification"]["id"] for f in before] == [old[0]["id"], old[1]["id"], recent["id"]]
    await client.close()

    await run_db(lambda: retention_apply.defer(organization_id=acme.organization.pk))
    await run_worker_until_idle()
    # (The worker's periodic upkeep round may have enqueued another retention job for Acme: it ran too.)
    ran = await run_db(jobs, "herald.retention_apply", organization_id=acme.organization.pk)
    assert ran and all(status == "succeeded" for status, _ in ran)
    assert await run_db(_message_seqs, acme) == [recent["seq"]]

    client, ready, before = await subscribe(herald_server, acme, secret, "rita", cursor=cursor)
    assert [f["type"] for f in before] == ["reset"] and before[0]["reason"] == "expired"
    await client.close()
    # A cursor at the newest deleted message misses nothing that is left: the recent one is replayed.
    client, _, before = await subscribe(herald_server, acme, secret, "rita", cursor=old[1]["seq"])
    assert [f["notification"]["id"] for f in before] == [recent["id"]]
    await client.close()

    # Once retention has deleted every message, a cursor the sequence handed out is expired, not unknown.
    await run_db(_backdate, acme, seqs=[recent["seq"]], days=30)
    await run_db(lambda: retention_apply.defer(organization_id=acme.organization.pk))
    await run_worker_until_idle()
    assert await run_db(_message_seqs, acme) == []
    client, _, before = await subscribe(herald_server, acme, secret, "rita", cursor=recent["seq"] - 1)
    assert [f["type"] for f in before] == ["reset"] and before[0]["reason"] == "expired"
    await client.close()


async def test_retention_of_one_organisation_leaves_another_alone(herald_server: HeraldServer) -> None:
    acme, globex = await run_db(make_org, "Acme"), await run_db(make_org, "Globex")
    for org in (acme, globex):
        sent = await api_send(herald_server, org, to=["sam"])
        await run_db(_backdate, org, seqs=[sent["seq"]], days=30)
    await run_db(lambda: retention_apply.defer(organization_id=acme.organization.pk))
    await run_worker_until_idle()
    assert await run_db(_message_seqs, acme) == []
    assert len(await run_db(_message_seqs, globex)) == 1


def _schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone() is not None


async def test_a_deleted_organisations_schema_is_dropped_only_after_seven_days() -> None:
    org = await run_db(make_org, "Doomed")
    original = org.organization.schema_name
    deleted = await run_db(organization_delete, organization=org.organization)
    organization_id = deleted.organization_id
    assert not await run_db(_schema_exists, original)  # renamed out of the way: the slug is free again
    assert await run_db(_schema_exists, deleted.schema_name)
    # The deletion scheduled the drop for seven days later: not due now, so the worker leaves it.
    scheduled = await run_db(jobs, "herald.deleted_schema_drop", organization_id=organization_id)
    assert [status for status, _ in scheduled] == ["todo"]

    # Run early on purpose, the job refuses to drop a schema younger than seven days.
    await run_db(
        lambda: deleted_schema_drop.configure(queueing_lock=f"early:{organization_id}").defer(
            organization_id=organization_id
        )
    )
    await run_worker_until_idle()
    assert await run_db(_schema_exists, deleted.schema_name)
    assert (await run_db(DeletedSchema.objects.get, organization_id=organization_id)).dropped_at is None

    # Six days and 23 hours on: still not due for the upkeep round either.
    await run_db(
        lambda: DeletedSchema.objects.filter(organization_id=organization_id).update(
            deleted_at=timezone.now() - timedelta(days=6, hours=23)
        )
    )
    assert (await run_db(upkeep_enqueue))["schema_drop"] == 0
    # Seven days and an hour on: the upkeep round enqueues the drop and the worker drops it.
    await run_db(
        lambda: DeletedSchema.objects.filter(organization_id=organization_id).update(
            deleted_at=timezone.now() - timedelta(days=7, hours=1)
        )
    )
    assert (await run_db(upkeep_enqueue))["schema_drop"] >= 1
    await run_worker_until_idle()
    assert not await run_db(_schema_exists, deleted.schema_name)
    assert (await run_db(DeletedSchema.objects.get, organization_id=organization_id)).dropped_at is not None


def _idempotency_records(org: Org, *, age_hours: list[int]) -> None:
    with tenant_context(org.organization):
        for age in age_hours:
            record = IdempotencyRecord.objects.create(
                key=f"k-{age}", endpoint="/v1/notifications", request_hash="0" * 64, status_code=202, response={}
            )
            IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - timedelta(hours=age))


def _idempotency_keys(org: Org) -> list[str]:
    with tenant_context(org.organization):
        return sorted(IdempotencyRecord.objects.values_list("key", flat=True))


async def test_the_idempotency_purge_job_keeps_two_days_of_keys_per_organisation() -> None:
    acme, globex = await run_db(make_org, "Acme"), await run_db(make_org, "Globex")
    for org in (acme, globex):
        await run_db(_idempotency_records, org, age_hours=[1, 47, 49, 200])
    await run_db(lambda: idempotency_purge.defer(organization_id=acme.organization.pk))
    await run_worker_until_idle()
    assert await run_db(_idempotency_keys, acme) == ["k-1", "k-47"]
    assert await run_db(_idempotency_keys, globex) == ["k-1", "k-200", "k-47", "k-49"]


async def test_the_upkeep_round_reports_yesterdays_overage_through_the_registered_source(
    stripe_env: StripeServers, acme: Org, globex: Org
) -> None:
    customer = await run_db(stripe_customer_ensure, organization=acme.organization)
    asked: list[tuple[int, date]] = []

    def quantity(organization: Organization, day: date) -> int:  # what the usage ledger will answer
        asked.append((organization.pk, day))
        return 321

    registered = overage_quantity_source()  # the ledger's, put back after
    overage_quantity_source_register(quantity)
    try:
        counts = await run_db(upkeep_enqueue)
        assert counts["overage"] >= 1
        await run_worker_until_idle(queues=["billing"])
    finally:
        overage_quantity_source_register(registered)
    yesterday = timezone.now().date() - timedelta(days=1)
    assert (acme.organization.pk, yesterday) in asked
    assert all(org_id != globex.organization.pk for org_id, _ in asked)  # no customer, nothing to ask or bill
    report = await run_db(MeterReport.objects.get, organization=acme.organization, period_start=yesterday)
    assert report.status == MeterReport.Status.SENT and report.quantity == 321
    sent = [e for e in stripe_env.meter_events()["events"] if e["identifier"] == report.identifier]
    assert [e["payload"] for e in sent] == [{"stripe_customer_id": customer.customer_id, "value": "321"}]


async def test_a_deleted_organisations_stripe_subscriptions_are_canceled(stripe_env: StripeServers, acme: Org) -> None:
    from tests.billing.test_webhook import _buy

    _, subscription = await run_db(_buy, stripe_env, acme)
    await run_db(organization_delete, organization=acme.organization)
    await run_worker_until_idle(queues=["billing"])
    after = await run_db(lambda: stripe_env.client().v1.subscriptions.retrieve(subscription["id"]).to_dict())
    assert after["status"] == "canceled"
