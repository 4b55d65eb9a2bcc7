"""The audit log: written by the services in the change's own transaction, with who and from where; filters;
one organisation's entries never on another's page; a year's retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from tenants.audit import audit_purge, audit_record
from tenants.models import ApiKey, AuditEntry
from tenants.services import api_key_create, api_key_revoke, api_key_roll
from tests.portal.conftest import Team, client_for


def entries(team: Team, action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(organization=team.acme.organization, action=action))


def test_portal_changes_are_recorded_with_actor_and_ip(team: Team) -> None:
    client = client_for(team.owner)
    ip = client.defaults["REMOTE_ADDR"]
    slug = team.acme.organization.slug
    client.post(f"/o/{slug}/keys/new", {"name": "ci", "kind": "secret"})
    key = ApiKey.objects.filter(organization=team.acme.organization, name="ci").get()
    client.post(f"/o/{slug}/keys/{key.pk}/roll", {"grace": 0})
    client.post(f"/o/{slug}/keys/{key.pk}/revoke")
    client.post(f"/o/{slug}/keys/signing-secret/rotate", {"overlap": 3600})
    client.post(f"/o/{slug}/members/invite", {"email": "someone@example.test", "role": "viewer"})
    client.post(f"/o/{slug}/members/{team.membership(team.developer).pk}/role", {"role": "viewer"})
    client.post(f"/o/{slug}/members/{team.membership(team.viewer).pk}/remove")
    client.post(f"/o/{slug}/settings/", {"name": "Acme Two"})
    for action in [
        "key.created",
        "key.rolled",
        "key.revoked",
        "signing_secret.rotated",
        "member.invited",
        "member.role_changed",
        "member.removed",
        "organization.settings_changed",
    ]:
        found = [e for e in entries(team, action) if e.actor_id == team.owner.pk]
        assert found, action
        assert found[0].ip == ip and found[0].actor_label == team.owner.email
    assert entries(team, "key.rolled")[0].target == key.prefix
    assert entries(team, "member.role_changed")[0].data == {"before": "developer", "after": "viewer"}


def test_services_called_without_a_request_record_no_actor(team: Team) -> None:
    issued = api_key_create(organization=team.acme.organization, kind="secret", name="from-cli")
    api_key_revoke(api_key=issued.api_key)
    entry = AuditEntry.objects.filter(organization=team.acme.organization, action="key.revoked").get()
    assert entry.actor_id is None and entry.actor_label == "" and entry.ip is None


def test_a_refused_change_leaves_no_entry(team: Team) -> None:
    key = api_key_create(organization=team.acme.organization, kind="secret").api_key
    api_key_revoke(api_key=key)
    with pytest.raises(ValidationError):
        api_key_roll(api_key=key, grace=timedelta(hours=1), actor=team.owner, ip="10.0.0.1")
    assert entries(team, "key.rolled") == []
    assert ApiKey.objects.filter(organization=team.acme.organization).count() == 3  # no replacement either


def test_the_page_filters_by_actor_and_action(team: Team) -> None:
    slug = team.acme.organization.slug
    client_for(team.owner).post(f"/o/{slug}/keys/new", {"name": "by-owner", "kind": "secret"})
    client_for(team.developer).post(f"/o/{slug}/keys/new", {"name": "by-dev", "kind": "secret"})
    client_for(team.developer).post(f"/o/{slug}/keys/signing-secret/rotate", {"overlap": 0})
    viewer = client_for(team.viewer)
    by_dev = viewer.get(f"/o/{slug}/audit/", {"actor": team.developer.pk}).content.decode()
    assert team.developer.email in by_dev and team.owner.email not in by_dev.split("<tbody>")[1]
    rotations = viewer.get(f"/o/{slug}/audit/", {"action": "signing_secret.rotated"}).content.decode()
    rows = rotations.split("<tbody>")[1]
    assert "Signing secret rotated" in rows and "Key created" not in rows
    everything = viewer.get(f"/o/{slug}/audit/", {"action": "nonsense", "actor": "x"}).content.decode()
    assert "Key created" in everything.split("<tbody>")[1]


def test_another_organisations_entries_never_show(team: Team) -> None:
    audit_record(organization=team.globex.organization, action="key.created", target="pk_globex_secret_marker")
    page = client_for(team.owner).get(f"/o/{team.acme.organization.slug}/audit/").content.decode()
    assert "pk_globex_secret_marker" not in page
    globex = client_for(team.globex_member).get(f"/o/{team.globex.organization.slug}/audit/").content.decode()
    assert "pk_globex_secret_marker" in globex


def test_entries_are_kept_for_a_year(team: Team) -> None:
    old = audit_record(organization=team.acme.organization, action="key.created", target="old")
    young = audit_record(organization=team.acme.organization, action="key.created", target="young")
    AuditEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=366))
    AuditEntry.objects.filter(pk=young.pk).update(created_at=timezone.now() - timedelta(days=364))
    assert audit_purge() >= 1
    assert not AuditEntry.objects.filter(pk=old.pk).exists()
    assert AuditEntry.objects.filter(pk=young.pk).exists()


def test_purge_audit_command(team: Team, capsys: pytest.CaptureFixture[str]) -> None:
    entry = audit_record(organization=team.acme.organization, action="key.created")
    AuditEntry.objects.filter(pk=entry.pk).update(created_at=timezone.now() - timedelta(days=40))
    call_command("purge_audit", "--days", "30")
    assert not AuditEntry.objects.filter(pk=entry.pk).exists()
    assert "deleted" in capsys.readouterr().out


def test_the_key_list_shows_who_created_each_key(team: Team) -> None:
    client = client_for(team.developer)
    client.post(f"/o/{team.acme.organization.slug}/keys/new", {"name": "mine", "kind": "secret"})
    page = client.get(f"/o/{team.acme.organization.slug}/keys/").content.decode()
    assert team.developer.email in page


def test_a_plan_change_is_recorded(team: Team) -> None:
    from tenants.services import organization_plan_change

    organization_plan_change(organization=team.acme.organization, plan="pro", actor=team.owner, ip="10.1.2.3")
    organization_plan_change(organization=team.acme.organization, plan="pro", actor=team.owner)  # no change
    (entry,) = entries(team, "plan.changed")
    assert entry.data == {"before": "free", "after": "pro"} and entry.ip == "10.1.2.3"
    team.acme.organization.refresh_from_db()
    assert team.acme.organization.plan == "pro"
