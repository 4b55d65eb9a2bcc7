"""Management commands: organisations and keys usable before the portal exists."""

from __future__ import annotations

import io
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tenants.keys import key_kind, key_prefix
from tenants.models import ApiKey, Organization, SigningSecret
from tenants.resolve import api_key_resolve
from tests.conftest import unique_slug


def run(*args: str) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().rstrip("\n").split("\n")


def test_create_organization_provisions_schema_and_signing_secret() -> None:
    slug = unique_slug("cmd")
    lines = run("create_organization", slug, "--name", "Command Co")
    organization = Organization.objects.get(slug=slug)
    assert organization.name == "Command Co"
    assert organization.schema_name in lines[-2]
    assert SigningSecret.objects.filter(organization=organization).count() == 1
    run("create_organization", slug)  # idempotent for an unowned slug
    assert Organization.objects.filter(slug=slug).count() == 1


def test_create_organization_refuses_bad_slug() -> None:
    with pytest.raises(CommandError, match="slug"):
        run("create_organization", "Bad Slug")


def test_create_key_prints_full_key_alone_on_last_line() -> None:
    slug = unique_slug("cmd")
    run("create_organization", slug)
    secret = run("create_key", slug, "--kind", "secret", "--name", "ci")[-1]
    assert key_kind(secret) == "secret"
    resolved = api_key_resolve(secret)
    assert resolved is not None and resolved.kind == "secret"
    publishable = run(
        "create_key",
        slug,
        "--kind",
        "publishable",
        "--origin",
        "https://App.Example.com",
        "--origin",
        "http://localhost:3000",
    )[-1]
    assert key_kind(publishable) == "publishable"
    row = ApiKey.objects.get(prefix=key_prefix(publishable), organization__slug=slug)
    assert row.allowed_origins == ["https://app.example.com", "http://localhost:3000"]
    assert row.name == ""


def test_create_key_refuses_origins_on_secret_key_and_unknown_org() -> None:
    slug = unique_slug("cmd")
    run("create_organization", slug)
    with pytest.raises(CommandError, match="origins"):
        run("create_key", slug, "--kind", "secret", "--origin", "https://a.example")
    with pytest.raises(CommandError, match="no organization"):
        run("create_key", unique_slug("nope"), "--kind", "secret")
    assert not ApiKey.objects.filter(organization__slug=slug).exists()


def test_list_keys_shows_prefixes_never_full_keys() -> None:
    slug = unique_slug("cmd")
    run("create_organization", slug)
    secret = run("create_key", slug, "--kind", "secret")[-1]
    publishable = run("create_key", slug, "--kind", "publishable", "--origin", "https://a.example")[-1]
    output = "\n".join(run("list_keys", slug))
    assert secret not in output and publishable not in output
    assert key_prefix(secret) in output and key_prefix(publishable) in output
    assert output.count("\tlive\t") == 2


def test_revoke_key_by_full_key_and_by_prefix() -> None:
    slug = unique_slug("cmd")
    run("create_organization", slug)
    first = run("create_key", slug, "--kind", "secret")[-1]
    second = run("create_key", slug, "--kind", "secret")[-1]
    assert api_key_resolve(first) is not None
    run("revoke_key", first)
    assert api_key_resolve(first) is None  # the cache is dropped at once
    if key_prefix(second) != key_prefix(first):
        run("revoke_key", key_prefix(second))
        assert api_key_resolve(second) is None
    assert "\trevoked\t" in "\n".join(run("list_keys", slug))


def test_revoke_key_refuses_unknown_and_mistyped_keys() -> None:
    slug = unique_slug("cmd")
    run("create_organization", slug)
    key = run("create_key", slug, "--kind", "secret")[-1]
    typo = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(CommandError):
        run("revoke_key", typo)
    with pytest.raises(CommandError):
        run("revoke_key", "hello")
    assert api_key_resolve(key) is not None


def test_roll_key_prints_new_key_and_old_one_lives_for_grace() -> None:
    slug = unique_slug("cmd")
    run("create_organization", slug)
    old = run("create_key", slug, "--kind", "publishable", "--origin", "https://a.example")[-1]
    assert api_key_resolve(old) is not None
    new = run("roll_key", old, "--grace", "1")[-1]
    assert key_kind(new) == "publishable" and new != old
    assert api_key_resolve(old) is not None  # inside the grace period
    new_row = ApiKey.objects.get(prefix=key_prefix(new), organization__slug=slug)
    assert new_row.allowed_origins == ["https://a.example"]
    old_row = ApiKey.objects.get(prefix=key_prefix(old), organization__slug=slug)
    assert old_row.rolled_to_id == new_row.pk
    assert old_row.expires_at is not None and old_row.expires_at <= timezone.now() + timedelta(seconds=1)
    time.sleep(1.1)
    assert api_key_resolve(old) is None  # after the grace period
    assert api_key_resolve(new) is not None


def test_roll_key_with_zero_grace_expires_at_once_and_refuses_revoked() -> None:
    slug = unique_slug("cmd")
    run("create_organization", slug)
    old = run("create_key", slug, "--kind", "secret")[-1]
    new = run("roll_key", old, "--grace", "0")[-1]
    assert api_key_resolve(old) is None
    assert api_key_resolve(new) is not None
    run("revoke_key", new)
    with pytest.raises(CommandError, match="revoked"):
        run("roll_key", new, "--grace", "60")
    with pytest.raises(CommandError, match="grace"):
        run("roll_key", old, "--grace", "-5")
