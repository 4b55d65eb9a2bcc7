"""Credentials from the command line: signing secrets, organisations, rolled keys, refused raw commands."""

from __future__ import annotations

import hashlib
import hmac
import io
import time
from contextlib import redirect_stderr

import pytest
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError

from tenants.keys import key_prefix
from tenants.models import ApiKey, Organization, SigningSecret
from tests.conftest import ALLOWED_ORIGIN, Org, unique_slug
from tests.notifications.api_support import Api


def run(*args: str) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().rstrip("\n").split("\n")


def _hash(secret: str, subscriber_id: str) -> str:
    return hmac.new(secret.encode(), subscriber_id.encode(), hashlib.sha256).hexdigest()


def test_create_organization_prints_the_signing_secret_once() -> None:
    slug = unique_slug("cred")
    lines = run("create_organization", slug, "--name", "Cred Co")
    stored = SigningSecret.objects.get(organization__slug=slug).secret
    assert lines[-1] == stored and "shown once" in lines[-2]
    again = "\n".join(run("create_organization", slug, "--name", "Cred Co"))
    assert stored not in again and "already exists" in again and f"show_signing_secret {slug}" in again


def test_create_organization_on_an_existing_slug_with_another_name_refuses() -> None:
    slug = unique_slug("cred")
    run("create_organization", slug, "--name", "First")
    with pytest.raises(CommandError, match=r"already exists with the name 'First', not 'Other'"):
        run("create_organization", slug, "--name", "Other")
    assert Organization.objects.get(slug=slug).name == "First"


def test_show_signing_secret_prints_the_current_secret_and_refuses_unknown_org() -> None:
    slug = unique_slug("cred")
    created = run("create_organization", slug)[-1]
    assert run("show_signing_secret", slug)[-1] == created
    with pytest.raises(CommandError, match="no organization"):
        run("show_signing_secret", unique_slug("nope"))


def test_list_organizations_lists_slug_name_and_schema() -> None:
    slug = unique_slug("cred")
    run("create_organization", slug, "--name", "Listed Co")
    run("create_key", slug, "--kind", "secret")
    rows = [line.split("\t") for line in run("list_organizations")]
    assert rows[0][:3] == ["slug", "name", "schema"]
    mine = [row for row in rows if row[0] == slug]
    assert len(mine) == 1 and mine[0][1] == "Listed Co" and mine[0][2] == "org_" + slug.replace("-", "_")
    assert mine[0][4] == "1"


def test_rotate_signing_secret_keeps_old_hashes_working_for_the_grace_only(acme: Org) -> None:
    slug = acme.organization.slug
    old_secret = run("show_signing_secret", slug)[-1]
    new_secret = run("rotate_signing_secret", slug, "--grace", "2")[-1]
    assert new_secret != old_secret and run("show_signing_secret", slug)[-1] == new_secret

    def widget(secret: str) -> Api:
        return Api(
            None,
            Origin=ALLOWED_ORIGIN,
            **{
                "X-Herald-Publishable-Key": acme.publishable_key,
                "X-Herald-Subscriber": "ada",
                "X-Herald-Subscriber-Hash": _hash(secret, "ada"),
            },
        )

    assert widget(old_secret).get("/v1/inbox/unread-count").status_code == 200
    assert widget(new_secret).get("/v1/inbox/unread-count").status_code == 200
    time.sleep(2.2)
    assert widget(old_secret).get("/v1/inbox/unread-count").status_code == 401
    assert widget(new_secret).get("/v1/inbox/unread-count").status_code == 200


def test_rotate_signing_secret_refuses_a_bad_grace(acme: Org) -> None:
    before = SigningSecret.objects.filter(organization=acme.organization).count()
    with pytest.raises(CommandError, match="grace"):
        run("rotate_signing_secret", acme.organization.slug, "--grace", "-1")
    assert SigningSecret.objects.filter(organization=acme.organization).count() == before


def test_roll_key_twice_refuses_and_leaves_one_replacement() -> None:
    slug = unique_slug("cred")
    run("create_organization", slug)
    old = run("create_key", slug, "--kind", "secret")[-1]
    new = run("roll_key", old, "--grace", "3600")[-1]
    with pytest.raises(CommandError, match=rf"already rolled to {key_prefix(new)}: roll {key_prefix(new)} instead"):
        run("roll_key", old, "--grace", "3600")
    assert ApiKey.objects.filter(organization__slug=slug).count() == 2


@pytest.mark.parametrize("command", ["create_tenant", "delete_tenant", "clone_tenant", "create_tenant_superuser"])
def test_raw_tenant_commands_are_refused_with_a_pointer(command: str) -> None:
    before = Organization.objects.count()
    with pytest.raises(CommandError, match="bypasses Herald's provisioning: use "):
        call_command(command, stdout=io.StringIO())
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as exited:
        ManagementUtility(["herald", command, "--schema_name", "org_x", "--noinput"]).execute()
    assert exited.value.code == 1 and "use herald" in err.getvalue()
    assert Organization.objects.count() == before
