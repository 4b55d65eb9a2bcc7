"""Invitation links: signed, valid 7 days, good once, for the invited address only."""

from __future__ import annotations

import re
import time

from django.core import mail, signing

from portal.invites import SALT
from tenants.models import AuditEntry, Invitation, Membership
from tests.portal.conftest import Team, client_for, portal_user


def invite(team: Team, email: str, role: str = "developer") -> str:
    """Invite through the members page as Acme's owner; the path of the link in the e-mail."""
    response = client_for(team.owner).post(
        f"/o/{team.acme.organization.slug}/members/invite", {"email": email, "role": role}
    )
    assert response.status_code == 302
    body = next(m for m in reversed(mail.outbox) if m.to == [email]).body
    found = re.search(r"https?://[^/\s]+(/invite/\S+)", body)
    assert found, body
    return found.group(1)


def test_an_invitation_is_accepted_once(team: Team) -> None:
    invitee = portal_user("invitee")
    link = invite(team, invitee.email, role="viewer")
    client = client_for(invitee)
    page = client.get(link)
    assert page.status_code == 200 and team.acme.organization.name.encode() in page.content
    accepted = client.post(link)
    assert accepted.status_code == 302 and accepted["Location"] == f"/o/{team.acme.organization.slug}/"
    assert Membership.objects.get(organization=team.acme.organization, user=invitee).role == "viewer"
    assert AuditEntry.objects.filter(organization=team.acme.organization, action="member.joined").count() == 1

    again = client.post(link)
    assert again.status_code == 410
    assert client.get(link).status_code == 410
    assert AuditEntry.objects.filter(organization=team.acme.organization, action="member.joined").count() == 1


def test_a_used_invitation_cannot_be_reused_by_someone_else(team: Team) -> None:
    invitee = portal_user("invitee")
    link = invite(team, invitee.email)
    client_for(invitee).post(link)
    other = portal_user("other")
    assert client_for(other).post(link).status_code == 410
    assert not Membership.objects.filter(user=other).exists()


def test_an_expired_invitation_is_refused(team: Team) -> None:
    invitee = portal_user("invitee")
    invite(team, invitee.email)
    invitation = Invitation.objects.get(email=invitee.email)

    class EightDaysAgo(signing.TimestampSigner):
        def timestamp(self) -> str:
            return signing.b62_encode(int(time.time()) - 8 * 24 * 3600)

    old = EightDaysAgo(salt=SALT).sign_object({"invitation": invitation.pk}, compress=True)
    response = client_for(invitee).post(f"/invite/{old}")
    assert response.status_code == 404 and b"expired" in response.content
    assert not Membership.objects.filter(user=invitee).exists()

    class SixDaysAgo(EightDaysAgo):
        def timestamp(self) -> str:
            return signing.b62_encode(int(time.time()) - 6 * 24 * 3600)

    recent = SixDaysAgo(salt=SALT).sign_object({"invitation": invitation.pk}, compress=True)
    assert client_for(invitee).post(f"/invite/{recent}").status_code == 302


def test_a_forged_or_guessed_invitation_is_refused(team: Team) -> None:
    invitee = portal_user("invitee")
    invite(team, invitee.email)
    invitation = Invitation.objects.get(email=invitee.email)
    forged = signing.dumps({"invitation": invitation.pk}, salt="another-salt", compress=True)
    client = client_for(invitee)
    assert client.post(f"/invite/{forged}").status_code == 404
    assert client.post(f"/invite/{invitation.pk}").status_code == 404
    assert client.post("/invite/" + "A" * 300).status_code == 404
    assert not Membership.objects.filter(user=invitee).exists()


def test_an_invitation_works_only_for_the_invited_address(team: Team) -> None:
    invitee = portal_user("invitee")
    link = invite(team, invitee.email)
    stranger = portal_user("stranger")
    response = client_for(stranger).post(link)
    assert response.status_code == 400 and invitee.email.encode() in response.content
    assert not Membership.objects.filter(user=stranger).exists()
    assert client_for(invitee).post(link).status_code == 302  # still good for the right person


def test_a_withdrawn_invitation_stops_working(team: Team) -> None:
    invitee = portal_user("invitee")
    link = invite(team, invitee.email)
    invitation = Invitation.objects.get(email=invitee.email)
    client_for(team.admin).post(f"/o/{team.acme.organization.slug}/members/invitations/{invitation.pk}/withdraw")
    assert client_for(invitee).post(link).status_code == 410


def test_anonymous_visitors_are_asked_to_sign_in_or_up_first(team: Team) -> None:
    invitee = portal_user("invitee")
    link = invite(team, invitee.email)
    anonymous = client_for(None)
    page = anonymous.get(link).content.decode()
    assert "/accounts/signup/?next=" in page and "/accounts/login/?next=" in page
    posted = anonymous.post(link)
    assert posted.status_code == 302 and posted["Location"].startswith("/accounts/login/")
    assert not Invitation.objects.get(email=invitee.email).accepted_at
