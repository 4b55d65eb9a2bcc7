"""Tenant-scoped names and connections: cache keys and channel-layer groups carry the tenant, a savepoint rolled
back inside a tenant leaves no stale search_path (django-tenants #1262), and a pooled connection never carries
one organisation's search_path into another's request."""

from __future__ import annotations

import httpx
from django.core.cache import cache
from django.db import connection, transaction
from django_tenants.utils import tenant_context

from notifications.groups import organization_group, subscriber_group, topic_group
from notifications.models import Subscriber
from tests.conftest import Org
from tests.servers import HeraldServer


def test_cache_keys_carry_the_tenant(acme: Org, globex: Org) -> None:
    with tenant_context(acme.organization):
        cache.set("tenant-scoped-probe", "acme's", 30)
        assert cache.get("tenant-scoped-probe") == "acme's"
    with tenant_context(globex.organization):
        assert cache.get("tenant-scoped-probe") is None


def test_group_names_carry_the_tenant_id(acme: Org, globex: Org) -> None:
    a, g = acme.organization.pk, globex.organization.pk
    names = {subscriber_group(a, 1), topic_group(a, 1), organization_group(a)}
    assert all(name.startswith(f"t{a}.") for name in names), names
    assert names.isdisjoint({subscriber_group(g, 1), topic_group(g, 1), organization_group(g)})


def test_a_savepoint_rolled_back_inside_a_tenant_leaves_no_stale_search_path(acme: Org, globex: Org) -> None:
    with tenant_context(acme.organization):
        Subscriber.objects.create(external_id="only-in-acme")
    with transaction.atomic():
        connection.set_tenant(acme.organization)  # type: ignore[attr-defined]
        assert Subscriber.objects.filter(external_id="only-in-acme").count() == 1
        sid = transaction.savepoint()
        connection.set_tenant(globex.organization)  # type: ignore[attr-defined]
        assert Subscriber.objects.filter(external_id="only-in-acme").count() == 0  # SET inside the savepoint
        transaction.savepoint_rollback(sid)  # PostgreSQL's search_path is acme's again; the tenant is globex
        assert connection.tenant.schema_name == globex.schema_name  # type: ignore[attr-defined]
        assert Subscriber.objects.filter(external_id="only-in-acme").count() == 0, "read acme's rows as globex"
        with connection.cursor() as cursor:
            cursor.execute("SHOW search_path")
            assert cursor.fetchone()[0].split(",")[0].strip().strip('"') == globex.schema_name
    connection.set_schema_to_public()  # type: ignore[attr-defined]


def test_interleaved_requests_of_two_organisations_each_see_only_their_own(
    herald_server: HeraldServer, acme: Org, globex: Org
) -> None:
    with tenant_context(acme.organization):
        Subscriber.objects.create(external_id="acme-only")
    with tenant_context(globex.organization):
        Subscriber.objects.create(external_id="globex-only")
    with httpx.Client(base_url=herald_server.url, timeout=10) as client:  # one keep-alive connection
        for _ in range(15):
            for org, own in ((acme, "acme-only"), (globex, "globex-only")):
                response = client.get("/v1/subscribers", headers={"Authorization": f"Bearer {org.secret_key}"})
                assert response.status_code == 200, response.text
                ids = {item["id"] for item in response.json()["items"]}
                assert ids == {own}, (org.schema_name, ids)
