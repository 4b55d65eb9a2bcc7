"""The key cache never outlives a revocation or a roll, even one that lands in the middle of a lookup."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tenants import resolve
from tenants.keys import key_hash
from tenants.models import ApiKey
from tenants.services import api_key_revoke, api_key_roll
from tests.conftest import Org


def _row(key: str) -> ApiKey:
    return ApiKey.objects.get(key_hash=key_hash(key))


def _uncached(key: str) -> str:
    """The key with its shared cache entry gone (issuing put it there), so the next resolve is a lookup."""
    from django.core.cache import cache
    from django_tenants.utils import schema_context

    with schema_context("public"):
        cache.delete(resolve._cache_key(key_hash(key)))
    return key


def test_a_revocation_between_a_lookups_read_and_its_cache_write_still_applies_at_once(
    acme: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = resolve._cache_store

    def revoked_meanwhile(hashed: str, resolved: resolve.ResolvedKey) -> None:
        api_key_revoke(api_key=_row(acme.secret_key))  # commits after the lookup read the live row
        store(hashed, resolved)

    monkeypatch.setattr(resolve, "_cache_store", revoked_meanwhile)
    assert (
        resolve.api_key_resolve(_uncached(acme.secret_key)) is not None
    )  # this lookup read the key before it was revoked
    monkeypatch.setattr(resolve, "_cache_store", store)
    assert resolve.api_key_resolve(acme.secret_key) is None


def test_a_roll_between_a_lookups_read_and_its_cache_write_still_applies(
    acme: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = resolve._cache_store

    def rolled_meanwhile(hashed: str, resolved: resolve.ResolvedKey) -> None:
        api_key_roll(api_key=_row(acme.secret_key), grace=timedelta(0))
        store(hashed, resolved)

    monkeypatch.setattr(resolve, "_cache_store", rolled_meanwhile)
    assert resolve.api_key_resolve(_uncached(acme.secret_key)) is not None
    monkeypatch.setattr(resolve, "_cache_store", store)
    assert resolve.api_key_resolve(acme.secret_key) is None


def test_a_live_key_is_cached_and_then_needs_no_query(acme: Org, django_assert_num_queries: object) -> None:
    first = resolve.api_key_resolve(acme.secret_key)
    assert first is not None
    with django_assert_num_queries(0):  # type: ignore[operator]
        assert resolve.api_key_resolve(acme.secret_key) == first
