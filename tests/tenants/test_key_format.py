"""API keys: their format, what is stored of them, and typos refused by the checksum before any lookup."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.forms.models import model_to_dict
from django_tenants.utils import schema_context

from tenants.keys import ALPHABET, CHECKSUM_LENGTH, RANDOM_LENGTH, KeyKind, key_generate, key_prefix
from tenants.models import ApiKey
from tenants.resolve import ResolvedKey, _cache_key, api_key_cache_forget, api_key_resolve
from tenants.services import api_key_create
from tests.conftest import Org

PREFIX_LENGTH = len("sk_live_")


def test_alphabet_and_length_carry_at_least_128_random_bits() -> None:
    assert len(set(ALPHABET)) == len(ALPHABET) == 62 and re.fullmatch(r"[0-9A-Za-z]+", ALPHABET)
    assert (RANDOM_LENGTH, CHECKSUM_LENGTH) == (22, 6)
    assert RANDOM_LENGTH * math.log2(len(set(ALPHABET))) >= 128  # 22 * log2(62) = 130.99 bits


def test_issued_keys_are_prefix_random_part_and_checksum(acme: Org) -> None:
    organization = acme.organization
    secret = api_key_create(organization=organization, kind="secret", name="s").key
    other_secret = api_key_create(organization=organization, kind="secret", name="s").key
    publishable = api_key_create(organization=organization, kind="publishable", name="p").key
    assert re.fullmatch(r"sk_live_[0-9A-Za-z]{28}", secret), secret
    assert re.fullmatch(r"sk_live_[0-9A-Za-z]{28}", other_secret), other_secret
    assert re.fullmatch(r"pk_live_[0-9A-Za-z]{28}", publishable), publishable
    assert len({secret, other_secret, publishable}) == 3
    assert secret[PREFIX_LENGTH:-CHECKSUM_LENGTH] != other_secret[PREFIX_LENGTH:-CHECKSUM_LENGTH]
    for key in (secret, other_secret, publishable):
        resolved = api_key_resolve(key)
        assert resolved is not None and resolved.organization_id == organization.pk


def test_the_random_part_uses_the_whole_alphabet_in_every_position() -> None:
    # 300 keys: 6,600 random characters. A character of the alphabet that never shows (a biased or narrowed
    # generator) has a chance of (61/62)^6600 < 1e-46 with a uniform one; one position taking under 40 of 62
    # values has a chance far below 1e-9.
    random_parts = [key_generate("secret")[PREFIX_LENGTH:-CHECKSUM_LENGTH] for _ in range(300)]
    assert all(len(part) == RANDOM_LENGTH for part in random_parts)
    assert set("".join(random_parts)) == set(ALPHABET)
    for position in range(RANDOM_LENGTH):
        assert len({part[position] for part in random_parts}) >= 40, position
    assert len(set(random_parts)) == 300


def test_the_row_stores_the_sha256_and_the_visible_prefix_never_the_key(acme: Org) -> None:
    kinds: tuple[KeyKind, ...] = ("secret", "publishable")
    for kind in kinds:
        issued = api_key_create(organization=acme.organization, kind=kind, name="stored")
        key = issued.key
        row = ApiKey.objects.get(pk=issued.api_key.pk)
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert re.fullmatch(r"[0-9a-f]{64}", row.key_hash)
        assert row.prefix == key[: PREFIX_LENGTH + 6] == key_prefix(key)
        hidden = key[len(row.prefix) :]  # everything after the visible prefix: 16 random chars and the checksum
        assert len(hidden) == RANDOM_LENGTH - 6 + CHECKSUM_LENGTH
        stored: dict[str, Any] = model_to_dict(row)
        assert not any(hidden in str(value) for value in stored.values()), stored
        # The row as PostgreSQL holds it, every column included.
        with schema_context("public"), connection.cursor() as cursor:
            cursor.execute(f"SELECT row_to_json(k)::text FROM {ApiKey._meta.db_table} k WHERE id = %s", [row.pk])
            found = cursor.fetchone()
        assert found is not None
        as_json = str(found[0])
        assert row.key_hash in as_json and hidden not in as_json and key not in as_json


def _one_character_changed(key: str, position: int) -> str:
    replacement = next(c for c in ALPHABET if c != key[position])
    return key[:position] + replacement + key[position + 1 :]


def test_a_key_with_one_character_changed_is_refused_without_a_query(
    acme: Org,
    django_assert_num_queries: Any,
) -> None:
    key = acme.secret_key
    assert api_key_resolve(key) is not None
    for position in range(PREFIX_LENGTH, len(key)):  # every random and checksum character
        typo = _one_character_changed(key, position)
        with django_assert_num_queries(0):
            assert api_key_resolve(typo) is None, position


def test_a_typo_is_refused_by_its_checksum_before_the_cache_or_database_is_read(
    acme: Org, django_assert_num_queries: Any
) -> None:
    """A live row and a cache entry exist for the mistyped key's hash: only the checksum can refuse it."""
    typo = _one_character_changed(acme.secret_key, PREFIX_LENGTH + 3)
    typo_hash = hashlib.sha256(typo.encode()).hexdigest()
    row = ApiKey.objects.create(
        organization=acme.organization, kind="secret", name="typo", prefix=key_prefix(typo), key_hash=typo_hash
    )
    entry = ResolvedKey(
        api_key_id=row.pk,
        kind="secret",
        key_hash=typo_hash,
        organization_id=acme.organization.pk,
        schema_name=acme.schema_name,
        plan=acme.organization.plan,
        allowed_origins=(),
        expires_at=None,
    )
    try:
        with schema_context("public"):
            cache.set(_cache_key(typo_hash), entry, 60)
            assert cache.get(_cache_key(typo_hash)) == entry  # would be found by a lookup
        with django_assert_num_queries(0):
            assert api_key_resolve(typo) is None
        # Without its cache entry the row would be found by a query: still refused, still no query.
        api_key_cache_forget(typo_hash)
        with django_assert_num_queries(0):
            assert api_key_resolve(typo) is None
    finally:
        api_key_cache_forget(typo_hash)
        row.delete()
