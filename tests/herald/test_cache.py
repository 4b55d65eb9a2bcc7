"""Cache keys carry the active schema, so tenants never share entries."""

from __future__ import annotations

from django.core.cache import cache
from django_tenants.utils import tenant_context

from tests.conftest import Org


def test_same_cache_key_in_two_organizations_holds_two_values(acme: Org, globex: Org) -> None:
    with tenant_context(acme.organization):
        cache.set("unread:u1", "acme-value", 30)
    with tenant_context(globex.organization):
        assert cache.get("unread:u1") is None
        cache.set("unread:u1", "globex-value", 30)
    with tenant_context(acme.organization):
        assert cache.get("unread:u1") == "acme-value"
    with tenant_context(globex.organization):
        assert cache.get("unread:u1") == "globex-value"
