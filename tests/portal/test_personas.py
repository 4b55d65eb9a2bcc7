"""Every portal page and action against owner, admin, developer, viewer, Globex's member and anonymous.

A non-member gets 404 (never 403) even with a guessed URL or key id; a member whose role does not allow an
action gets 403 and nothing changes; anonymous users are sent to sign in.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tenants.models import ApiKey, AuditEntry, Invitation, Membership, Organization, SigningSecret
from tests.portal.conftest import Team, client_for, portal_user

PERSONAS = ["owner", "admin", "developer", "viewer", "globex_member", "anonymous"]
MEMBERS = {"owner", "admin", "developer", "viewer"}


def acme_url(team: Team, path: str = "") -> str:
    return f"/o/{team.acme.organization.slug}/{path}"


def expect(persona: str, allowed: set[str]) -> int:
    """The status a persona gets: 200 when allowed, 403 for other members, 404 for Globex, 302 for anonymous."""
    if persona == "anonymous":
        return 302
    if persona == "globex_member":
        return 404
    return 200 if persona in allowed else 403


def secret_key_of(team: Team) -> ApiKey:
    return ApiKey.objects.filter(organization=team.acme.organization, kind="secret", revoked_at__isnull=True).first()  # type: ignore[return-value]


def publishable_key_of(team: Team) -> ApiKey:
    return ApiKey.objects.get(organization=team.acme.organization, kind="publishable")


# --- pages -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("path", ["", "keys/", "members/", "audit/", "settings/"])
def test_organization_pages_open_to_members_only(team: Team, persona: str, path: str) -> None:
    response = client_for(team.user(persona)).get(acme_url(team, path))
    assert response.status_code == expect(persona, MEMBERS)
    if persona == "anonymous":
        assert response["Location"].startswith("/accounts/login/?next=")
    if response.status_code == 200:
        assert team.acme.organization.name.encode() in response.content


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("path", ["keys/new", "keys/signing-secret/rotate"])
def test_key_forms_open_to_developers_and_up(team: Team, persona: str, path: str) -> None:
    response = client_for(team.user(persona)).get(acme_url(team, path))
    assert response.status_code == expect(persona, {"owner", "admin", "developer"})


@pytest.mark.parametrize("persona", PERSONAS)
def test_delete_page_open_to_owners_only(team: Team, persona: str) -> None:
    response = client_for(team.user(persona)).get(acme_url(team, "settings/delete"))
    assert response.status_code == expect(persona, {"owner"})


def test_unknown_organisation_and_globex_look_the_same_to_a_globex_member(team: Team) -> None:
    client = client_for(team.globex_member)
    unknown = client.get("/o/no-such-org-anywhere/keys/")
    acme = client.get(acme_url(team, "keys/"))
    assert unknown.status_code == acme.status_code == 404
    assert client.get(f"/o/{team.globex.organization.slug}/keys/").status_code == 200


def test_viewer_sees_keys_but_no_buttons_that_change_them(team: Team) -> None:
    body = client_for(team.viewer).get(acme_url(team, "keys/")).content.decode()
    assert secret_key_of(team).prefix in body
    assert "Create key" not in body and "Revoke" not in body and "Reveal signing secret" not in body
    owner_body = client_for(team.owner).get(acme_url(team, "keys/")).content.decode()
    assert "Create key" in owner_body and "Revoke" in owner_body and "Reveal signing secret" in owner_body


# --- keys --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_creating_a_key(team: Team, persona: str) -> None:
    before = ApiKey.objects.filter(organization=team.acme.organization).count()
    response = client_for(team.user(persona)).post(acme_url(team, "keys/new"), {"name": "ci", "kind": "secret"})
    assert response.status_code == expect(persona, {"owner", "admin", "developer"})
    after = ApiKey.objects.filter(organization=team.acme.organization).count()
    if response.status_code == 200:
        assert after == before + 1
        created = ApiKey.objects.filter(organization=team.acme.organization).latest("id")
        assert created.created_by == team.user(persona)
        body = response.content.decode()
        assert "sk_live_" in body and created.prefix in body
        assert response["Cache-Control"] == "no-store"
    else:
        assert after == before


def test_a_created_key_is_shown_once(team: Team) -> None:
    client = client_for(team.developer)
    shown = client.post(acme_url(team, "keys/new"), {"name": "once", "kind": "secret"}).content.decode()
    full = shown.split('id="issued-key">')[1].split("<")[0]
    assert full.startswith("sk_live_") and len(full) > 30
    assert full not in client.get(acme_url(team, "keys/")).content.decode()


def test_a_publishable_key_is_created_with_its_origins(team: Team) -> None:
    client_for(team.developer).post(
        acme_url(team, "keys/new"),
        {"name": "web", "kind": "publishable", "allowed_origins": "https://app.acme.test\nhttp://localhost:3000"},
    )
    key = ApiKey.objects.filter(organization=team.acme.organization, name="web").get()
    assert key.allowed_origins == ["https://app.acme.test", "http://localhost:3000"]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "x", "kind": "secret", "allowed_origins": "https://a.test"}, b"secret keys do not take"),
        ({"name": "x", "kind": "publishable", "allowed_origins": "not a url"}, b"errorlist"),
        ({"name": "x", "kind": "root"}, b"errorlist"),
        ({"name": "x" * 101, "kind": "secret"}, b"errorlist"),
    ],
)
def test_bad_key_forms_are_refused_with_a_message(team: Team, form: dict[str, str], message: bytes) -> None:
    before = ApiKey.objects.count()
    response = client_for(team.developer).post(acme_url(team, "keys/new"), form)
    assert response.status_code == 400
    assert message in response.content
    assert ApiKey.objects.count() == before


@pytest.mark.parametrize("persona", PERSONAS)
def test_revoking_a_key(team: Team, persona: str) -> None:
    key = secret_key_of(team)
    response = client_for(team.user(persona)).post(acme_url(team, f"keys/{key.pk}/revoke"))
    allowed = {"owner", "admin", "developer"}
    assert response.status_code == (302 if persona in allowed else expect(persona, allowed))
    key.refresh_from_db()
    assert (key.revoked_at is not None) == (persona in allowed)


def test_revoke_asks_for_confirmation_first(team: Team) -> None:
    key = secret_key_of(team)
    page = client_for(team.developer).get(acme_url(team, f"keys/{key.pk}/revoke"))
    assert page.status_code == 200 and b"Revoke key" in page.content
    key.refresh_from_db()
    assert key.revoked_at is None


@pytest.mark.parametrize("action", ["revoke", "roll", "origins"])
def test_globex_member_cannot_touch_an_acme_key_even_through_globex_urls(team: Team, action: str) -> None:
    key = publishable_key_of(team)
    client = client_for(team.globex_member)
    through_globex = client.post(f"/o/{team.globex.organization.slug}/keys/{key.pk}/{action}", {"grace": 0})
    through_acme = client.post(acme_url(team, f"keys/{key.pk}/{action}"), {"grace": 0})
    assert through_globex.status_code == through_acme.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None and key.rolled_to is None


@pytest.mark.parametrize("persona", PERSONAS)
def test_rolling_a_key_with_a_grace_period(team: Team, persona: str) -> None:
    key = secret_key_of(team)
    response = client_for(team.user(persona)).post(acme_url(team, f"keys/{key.pk}/roll"), {"grace": 3600})
    allowed = {"owner", "admin", "developer"}
    assert response.status_code == expect(persona, allowed)
    key.refresh_from_db()
    if persona in allowed:
        assert key.rolled_to is not None and key.expires_at is not None
        assert 3500 < (key.expires_at - key.created_at).total_seconds() < 3700 + 600
        assert b"sk_live_" in response.content
    else:
        assert key.rolled_to is None and key.expires_at is None


@pytest.mark.parametrize("grace", ["-5", "99999999", "soon"])
def test_a_grace_period_outside_the_choices_is_refused(team: Team, grace: str) -> None:
    key = secret_key_of(team)
    response = client_for(team.developer).post(acme_url(team, f"keys/{key.pk}/roll"), {"grace": grace})
    assert response.status_code == 400
    key.refresh_from_db()
    assert key.rolled_to is None


@pytest.mark.parametrize("persona", PERSONAS)
def test_editing_allowed_origins(team: Team, persona: str) -> None:
    key = publishable_key_of(team)
    response = client_for(team.user(persona)).post(
        acme_url(team, f"keys/{key.pk}/origins"), {"allowed_origins": "https://new.acme.test"}
    )
    allowed = {"owner", "admin", "developer"}
    assert response.status_code == (302 if persona in allowed else expect(persona, allowed))
    key.refresh_from_db()
    assert (key.allowed_origins == ["https://new.acme.test"]) == (persona in allowed)


def test_a_secret_key_has_no_origins_page(team: Team) -> None:
    key = secret_key_of(team)
    assert client_for(team.developer).get(acme_url(team, f"keys/{key.pk}/origins")).status_code == 404


def test_a_bad_origin_is_refused(team: Team) -> None:
    key = publishable_key_of(team)
    response = client_for(team.developer).post(
        acme_url(team, f"keys/{key.pk}/origins"), {"allowed_origins": "javascript:alert(1)"}
    )
    assert response.status_code == 400
    key.refresh_from_db()
    assert key.allowed_origins == ["http://app.acme.test"]


@pytest.mark.parametrize("persona", PERSONAS)
def test_revealing_the_signing_secret(team: Team, persona: str) -> None:
    secret = SigningSecret.objects.get(organization=team.acme.organization).secret
    response = client_for(team.user(persona)).post(acme_url(team, "keys/signing-secret"))
    allowed = {"owner", "admin", "developer"}
    assert response.status_code == expect(persona, allowed)
    assert (secret.encode() in response.content) == (persona in allowed)
    if persona in allowed:
        assert response["Cache-Control"] == "no-store"


def test_the_signing_secret_is_revealed_as_an_htmx_fragment(team: Team) -> None:
    secret = SigningSecret.objects.get(organization=team.acme.organization).secret
    response = client_for(team.developer).post(acme_url(team, "keys/signing-secret"), HTTP_HX_REQUEST="true")
    assert secret.encode() in response.content
    assert b"<html" not in response.content


def test_the_signing_secret_is_never_revealed_by_get(team: Team) -> None:
    assert client_for(team.owner).get(acme_url(team, "keys/signing-secret")).status_code == 405


@pytest.mark.parametrize("persona", PERSONAS)
def test_rotating_the_signing_secret_keeps_the_old_one_for_the_overlap(team: Team, persona: str) -> None:
    old = SigningSecret.objects.get(organization=team.acme.organization)
    response = client_for(team.user(persona)).post(acme_url(team, "keys/signing-secret/rotate"), {"overlap": 86400})
    allowed = {"owner", "admin", "developer"}
    assert response.status_code == (302 if persona in allowed else expect(persona, allowed))
    secrets = list(SigningSecret.objects.filter(organization=team.acme.organization))
    old.refresh_from_db()
    if persona in allowed:
        assert len(secrets) == 2 and old.expires_at is not None
        assert 86000 < (old.expires_at - old.created_at).total_seconds() < 86400 + 600
    else:
        assert len(secrets) == 1 and old.expires_at is None


# --- members -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_inviting_a_member(team: Team, persona: str, mailoutbox: list) -> None:  # type: ignore[type-arg]
    response = client_for(team.user(persona)).post(
        acme_url(team, "members/invite"), {"email": "new.person@example.test", "role": "developer"}
    )
    allowed = {"owner", "admin"}
    assert response.status_code == (302 if persona in allowed else expect(persona, allowed))
    invited = Invitation.objects.filter(organization=team.acme.organization, email="new.person@example.test")
    assert invited.exists() == (persona in allowed)
    assert len(mailoutbox) == (1 if persona in allowed else 0)
    if persona in allowed:
        assert "/invite/" in mailoutbox[0].body and mailoutbox[0].to == ["new.person@example.test"]


def test_an_admin_cannot_invite_an_owner(team: Team) -> None:
    response = client_for(team.admin).post(
        acme_url(team, "members/invite"), {"email": "boss@example.test", "role": "owner"}
    )
    assert response.status_code == 400
    assert not Invitation.objects.filter(email="boss@example.test").exists()


@pytest.mark.parametrize("email", ["not-an-address", "", "a@b"])
def test_a_bad_invite_address_is_refused(team: Team, email: str) -> None:
    response = client_for(team.owner).post(acme_url(team, "members/invite"), {"email": email, "role": "viewer"})
    assert response.status_code == 400
    assert not Invitation.objects.filter(organization=team.acme.organization).exists()


def test_inviting_an_existing_member_is_refused(team: Team) -> None:
    response = client_for(team.owner).post(
        acme_url(team, "members/invite"), {"email": team.viewer.email, "role": "viewer"}
    )
    assert response.status_code == 400 and b"already a member" in response.content


@pytest.mark.parametrize("persona", PERSONAS)
def test_changing_a_role(team: Team, persona: str) -> None:
    target = team.membership(team.developer)
    response = client_for(team.user(persona)).post(acme_url(team, f"members/{target.pk}/role"), {"role": "viewer"})
    allowed = {"owner", "admin"}
    assert response.status_code == (302 if persona in allowed else expect(persona, allowed))
    target.refresh_from_db()
    assert (target.role == "viewer") == (persona in allowed)


def test_an_admin_cannot_promote_to_owner_or_touch_an_owner(team: Team) -> None:
    client = client_for(team.admin)
    developer = team.membership(team.developer)
    owner = team.membership(team.owner)
    assert client.post(acme_url(team, f"members/{developer.pk}/role"), {"role": "owner"}).status_code == 400
    assert client.post(acme_url(team, f"members/{owner.pk}/role"), {"role": "viewer"}).status_code == 403
    assert client.post(acme_url(team, f"members/{owner.pk}/remove")).status_code == 403
    developer.refresh_from_db()
    owner.refresh_from_db()
    assert developer.role == "developer" and owner.role == "owner"


def test_a_globex_member_cannot_change_an_acme_membership_through_globex(team: Team) -> None:
    target = team.membership(team.viewer)
    client = client_for(team.globex_member)  # an owner of Globex
    response = client.post(f"/o/{team.globex.organization.slug}/members/{target.pk}/role", {"role": "owner"})
    assert response.status_code == 404
    assert client.post(f"/o/{team.globex.organization.slug}/members/{target.pk}/remove").status_code == 404
    target.refresh_from_db()
    assert target.role == "viewer"


@pytest.mark.parametrize("persona", PERSONAS)
def test_removing_a_member(team: Team, persona: str) -> None:
    target = team.membership(team.viewer)
    client = client_for(team.user(persona))
    response = client.post(acme_url(team, f"members/{target.pk}/remove"))
    allowed = {"owner", "admin", "viewer"}  # the viewer removes themself: leaving
    assert response.status_code == (302 if persona in allowed else expect(persona, allowed))
    assert Membership.objects.filter(pk=target.pk).exists() == (persona not in allowed)


def test_the_last_owner_cannot_be_demoted_or_removed_or_leave(team: Team) -> None:
    owner = team.membership(team.owner)
    client = client_for(team.owner)
    demoted = client.post(acme_url(team, f"members/{owner.pk}/role"), {"role": "admin"})
    left = client.post(acme_url(team, f"members/{owner.pk}/remove"))
    assert demoted.status_code == left.status_code == 400
    assert b"last owner" in demoted.content and b"last owner" in left.content
    owner.refresh_from_db()
    assert owner.role == "owner"
    assert not AuditEntry.objects.filter(
        organization=team.acme.organization, action__in=["member.role_changed", "member.removed"]
    ).exists()


def test_with_a_second_owner_the_first_may_leave(team: Team) -> None:
    admin = team.membership(team.admin)
    client_for(team.owner).post(acme_url(team, f"members/{admin.pk}/role"), {"role": "owner"})
    owner = team.membership(team.owner)
    response = client_for(team.owner).post(acme_url(team, f"members/{owner.pk}/remove"))
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=owner.pk).exists()
    assert client_for(team.owner).get(acme_url(team)).status_code == 404


@pytest.mark.parametrize("persona", PERSONAS)
def test_withdrawing_an_invitation(team: Team, persona: str) -> None:
    invitation = Invitation.objects.create(organization=team.acme.organization, email="x@example.test", role="viewer")
    response = client_for(team.user(persona)).post(acme_url(team, f"members/invitations/{invitation.pk}/withdraw"))
    allowed = {"owner", "admin"}
    assert response.status_code == (302 if persona in allowed else expect(persona, allowed))
    invitation.refresh_from_db()
    assert (invitation.revoked_at is not None) == (persona in allowed)


# --- settings and deletion -------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_renaming_the_organisation(team: Team, persona: str) -> None:
    response = client_for(team.user(persona)).post(acme_url(team, "settings/"), {"name": "Acme Renamed"})
    allowed = {"owner", "admin"}
    assert response.status_code == (302 if persona in allowed else expect(persona, allowed))
    team.acme.organization.refresh_from_db()
    assert (team.acme.organization.name == "Acme Renamed") == (persona in allowed)


def test_an_empty_name_is_refused(team: Team) -> None:
    response = client_for(team.owner).post(acme_url(team, "settings/"), {"name": "   "})
    assert response.status_code == 400


@pytest.mark.parametrize("persona", PERSONAS)
def test_deleting_the_organisation(team: Team, persona: str) -> None:
    slug = team.acme.organization.slug
    response = client_for(team.user(persona)).post(acme_url(team, "settings/delete"), {"confirm": slug})
    allowed = {"owner"}
    assert response.status_code == (302 if persona in allowed else expect(persona, allowed))
    assert Organization.objects.filter(slug=slug).exists() == (persona not in allowed)


def test_deleting_needs_the_slug_typed(team: Team) -> None:
    response = client_for(team.owner).post(acme_url(team, "settings/delete"), {"confirm": "yes"})
    assert response.status_code == 400
    assert Organization.objects.filter(pk=team.acme.organization.pk).exists()


def test_a_deleted_organisations_keys_go_and_its_schema_waits_to_be_dropped(team: Team) -> None:
    from django.db import connection

    from tenants.models import DeletedSchema

    schema = team.acme.organization.schema_name
    client_for(team.owner).post(acme_url(team, "settings/delete"), {"confirm": team.acme.organization.slug})
    assert not ApiKey.objects.filter(organization_id=team.acme.organization.pk).exists()
    # The schema is renamed out of the way at once; a background job drops it 7 days on (tests/billing/test_jobs.py).
    deleted = DeletedSchema.objects.get(organization_id=team.acme.organization.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        assert cursor.fetchone() is None
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [deleted.schema_name])
        assert cursor.fetchone() is not None


# --- the front door and switching ---------------------------------------------------------------------------


def test_front_door_takes_a_member_to_their_organisation(team: Team) -> None:
    response = client_for(team.viewer).get("/")
    assert response.status_code == 302 and response["Location"] == acme_url(team)


def test_a_user_in_two_organisations_can_switch(team: Team) -> None:
    Membership.objects.create(organization=team.globex.organization, user=team.viewer, role="viewer")
    client = client_for(team.viewer)
    page = client.get(acme_url(team)).content.decode()
    assert f"/o/{team.globex.organization.slug}/" in page  # the switcher lists both
    assert client.get(f"/o/{team.globex.organization.slug}/").status_code == 200
    assert client.get("/")["Location"] == f"/o/{team.globex.organization.slug}/"  # the last one opened


def test_a_user_without_organisations_is_asked_to_create_one() -> None:
    user: User = portal_user("lonely")
    assert client_for(user).get("/")["Location"] == "/new"


def test_anonymous_front_door_offers_sign_in_and_sign_up() -> None:
    body = Client().get("/").content.decode()
    assert "/accounts/login/" in body and "/accounts/signup/" in body


def test_a_globex_member_cannot_withdraw_an_acme_invitation_through_globex(team: Team) -> None:
    invitation = Invitation.objects.create(organization=team.acme.organization, email="y@example.test", role="viewer")
    client = client_for(team.globex_member)
    response = client.post(f"/o/{team.globex.organization.slug}/members/invitations/{invitation.pk}/withdraw")
    assert response.status_code == 404
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


@pytest.mark.parametrize("path", ["keys/abc/revoke", "keys/-1/roll", "members/1e3/role", "keys/99999999999/revoke"])
def test_malformed_or_unknown_ids_are_404(team: Team, path: str) -> None:
    assert client_for(team.owner).post(acme_url(team, path), {"grace": 0, "role": "viewer"}).status_code == 404
