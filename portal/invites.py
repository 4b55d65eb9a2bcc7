"""Invitation links: a signed token naming the invitation row, valid for 7 days; the row makes it work once."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.urls import reverse

from tenants.models import Invitation

SALT = "herald.portal.invitation"


def invitation_token(invitation: Invitation) -> str:
    """The signed token of the invitation's link."""
    return signing.dumps({"invitation": invitation.pk}, salt=SALT, compress=True)


def invitation_id_from_token(token: str) -> int | None:
    """The invitation a token names, or None when it is forged, malformed or older than 7 days."""
    try:
        value = signing.loads(token, salt=SALT, max_age=settings.HERALD_INVITE_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired is a BadSignature
        return None
    invitation_id = value.get("invitation") if isinstance(value, dict) else None
    return invitation_id if isinstance(invitation_id, int) else None


def invitation_email_send(*, invitation: Invitation, base_url: str) -> None:
    """E-mail the invitation's link (called after the invitation's transaction commits)."""
    url = base_url.rstrip("/") + reverse("portal:invitation", args=[invitation_token(invitation)])
    inviter = invitation.invited_by.email if invitation.invited_by else "Someone"
    send_mail(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}Join {invitation.organization.name} on Herald",
        message=(
            f"{inviter} invited you to join {invitation.organization.name} on Herald as "
            f"{invitation.get_role_display().lower()}.\n\nAccept the invitation (the link works once, for 7 days):\n"
            f"{url}\n"
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )
