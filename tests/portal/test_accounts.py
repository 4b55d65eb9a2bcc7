"""Accounts through allauth: sign-up with a confirmed e-mail, the first organisation, log in/out, password reset,
two-factor pages, rate limits, session rotation, CSRF and the portal's security headers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import Client

from portal.middleware import CONTENT_SECURITY_POLICY
from tenants.models import AuditEntry, Membership, Organization
from tests.portal.conftest import Team, client_for, client_ip

PASSWORD = "correct horse battery staple 42"


def new_email() -> str:
    return f"person-{uuid.uuid4().hex[:8]}@example.test"


def confirmation_link(to: str) -> str:
    message = next(m for m in reversed(mail.outbox) if m.to == [to])
    found = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+)", message.body)
    assert found, message.body
    return found.group(1)


def sign_up(client: Client, email: str) -> None:
    response = client.post("/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302, response.content[:2000]


def test_sign_up_needs_the_email_confirmed_then_lands_in_a_new_organisation() -> None:
    email = new_email()
    client = Client(REMOTE_ADDR=client_ip())
    sign_up(client, email)
    assert client.get("/").status_code == 200  # not signed in yet: the front door
    assert "_auth_user_id" not in client.session
    # Signing in before confirming sends you to confirm.
    refused = client.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert refused.status_code == 302 and "confirm-email" in refused["Location"]
    assert "_auth_user_id" not in client.session

    link = confirmation_link(email)
    assert client.get(link).status_code == 200  # the page asks; only a POST confirms
    confirmed = client.post(link)
    assert confirmed.status_code == 302
    assert client.session["_auth_user_id"]
    assert client.get("/")["Location"] == "/new"

    created = client.post("/new", {"name": "Initech Labs"})
    assert created.status_code == 302
    organization = Organization.objects.get(memberships__user__email=email)
    assert created["Location"] == f"/o/{organization.slug}/"
    assert organization.name == "Initech Labs" and organization.slug.startswith("initech-labs")
    assert Membership.objects.get(organization=organization).role == "owner"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [organization.schema_name])
        assert cursor.fetchone() is not None
    assert AuditEntry.objects.filter(organization=organization, action="organization.created").exists()
    assert client.get(created["Location"]).status_code == 200


def test_a_second_organisation_with_a_taken_slug_is_refused_with_a_message(team: Team) -> None:
    client = client_for(team.viewer)
    response = client.post("/new", {"name": "Mine", "slug": team.globex.organization.slug})
    assert response.status_code == 200 and b"taken" in response.content
    response = client.post("/new", {"name": "Mine", "slug": "admin"})
    assert b"reserved" in response.content
    assert not Membership.objects.filter(user=team.viewer, role="owner").exists()


def test_a_name_that_makes_no_slug_still_gets_one() -> None:
    client = Client(REMOTE_ADDR=client_ip())
    user = User.objects.create_user(username=uuid.uuid4().hex[:12], email=new_email())
    client.force_login(user)
    response = client.post("/new", {"name": "株式会社"})
    assert response.status_code == 302
    assert Organization.objects.filter(memberships__user=user).get().slug.startswith("org")


def test_login_rotates_the_session_and_logout_ends_it() -> None:
    email = new_email()
    user = User.objects.create_user(username=uuid.uuid4().hex[:12], email=email, password=PASSWORD)
    user.emailaddress_set.create(email=email, verified=True, primary=True)  # type: ignore[attr-defined]
    client = Client(REMOTE_ADDR=client_ip())
    session = client.session
    session["seen"] = True
    session.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    before = session.session_key

    response = client.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert response.status_code == 302
    after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert after and after != before
    assert client.session["_auth_user_id"] == str(user.pk)

    client.post("/accounts/logout/")
    assert "_auth_user_id" not in client.session


def test_failed_logins_are_rate_limited() -> None:
    email = new_email()
    user = User.objects.create_user(username=uuid.uuid4().hex[:12], email=email, password=PASSWORD)
    user.emailaddress_set.create(email=email, verified=True, primary=True)  # type: ignore[attr-defined]
    client = Client(REMOTE_ADDR=client_ip())
    answers = [client.post("/accounts/login/", {"login": email, "password": "wrong"}) for _ in range(6)]
    assert b"Too many failed login attempts" not in answers[0].content
    assert b"Too many failed login attempts" in answers[-1].content
    # Even the right password is refused while the limit holds, from another address too (per account).
    for other in (client, Client(REMOTE_ADDR=client_ip())):
        right = other.post("/accounts/login/", {"login": email, "password": PASSWORD})
        assert b"Too many failed login attempts" in right.content
        assert "_auth_user_id" not in other.session


def test_sign_ups_are_rate_limited_per_ip() -> None:
    client = Client(REMOTE_ADDR=client_ip())
    codes = []
    for _ in range(12):
        response = client.post("/accounts/signup/", {"email": "not-an-email", "password1": "x", "password2": "y"})
        codes.append(response.status_code)
    assert codes[0] == 200 and codes[-1] == 429, codes
    assert Client(REMOTE_ADDR=client_ip()).get("/accounts/signup/").status_code == 200  # another IP is not limited


def test_password_reset_sends_a_link() -> None:
    email = new_email()
    User.objects.create_user(username=uuid.uuid4().hex[:12], email=email, password=PASSWORD)
    response = Client(REMOTE_ADDR=client_ip()).post("/accounts/password/reset/", {"email": email})
    assert response.status_code == 302
    message = next(m for m in mail.outbox if m.to == [email])
    assert "/accounts/password/reset/key/" in message.body


def test_two_factor_pages_offer_an_authenticator_app(team: Team) -> None:
    client = client_for(team.developer)
    index = client.get("/accounts/2fa/")
    assert index.status_code == 200 and b"Authenticator" in index.content


def test_the_front_door_and_accounts_pages_render_in_the_portal_layout() -> None:
    client = Client(REMOTE_ADDR=client_ip())
    for url in ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]:
        response = client.get(url)
        assert response.status_code == 200
        assert b"/static/portal/portal.css" in response.content, url


def test_state_changes_need_the_csrf_token(team: Team) -> None:
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=client_ip())
    client.force_login(team.owner)
    response = client.post(f"/o/{team.acme.organization.slug}/keys/new", {"name": "x", "kind": "secret"})
    assert response.status_code == 403
    assert not team.acme.organization.api_keys.filter(name="x").exists()


def test_actions_refuse_get(team: Team) -> None:
    client = client_for(team.owner)
    slug = team.acme.organization.slug
    assert client.get(f"/o/{slug}/members/invite").status_code == 405
    assert client.get(f"/o/{slug}/keys/signing-secret").status_code == 405


def test_portal_pages_carry_a_strict_csp_and_refuse_framing(team: Team) -> None:
    response = client_for(team.owner).get(f"/o/{team.acme.organization.slug}/keys/")
    policy = response["Content-Security-Policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert b"<script>" not in response.content and b"style=" not in response.content
    assert b"onclick" not in response.content


def test_production_cookies_are_secure_httponly_and_lax() -> None:
    probe = (
        "import herald.settings as s; print(s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.SESSION_COOKIE_SAMESITE, s.CSRF_COOKIE_SECURE, s.CSRF_COOKIE_SAMESITE, s.X_FRAME_OPTIONS)"
    )
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("HERALD_ENV", "DEBUG", "SECRET_KEY")},
        "HERALD_ENV": "production",
        "SECRET_KEY": "k" * 50,
        "ALLOWED_HOSTS": "herald.example.com",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/herald",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "Lax", "True", "Lax", "DENY"]


def test_smtp_is_chosen_by_email_host() -> None:
    probe = "import herald.settings as s; print(s.EMAIL_BACKEND, s.EMAIL_PORT, s.EMAIL_USE_TLS)"
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/herald",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "EMAIL_HOST": "smtp.example.com",
    }
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.core.mail.backends.smtp.EmailBackend", "587", "True"]
    bad = subprocess.run(
        [sys.executable, "-c", probe], env={**env, "EMAIL_PORT": "smtp"}, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "EMAIL_PORT" in bad.stderr


def test_users_sessions_and_accounts_live_in_the_public_schema_only(team: Team) -> None:
    tables = ["auth_user", "django_session", "account_emailaddress", "mfa_authenticator", "tenants_auditentry"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name = ANY(%s)", [tables]
        )
        found = cursor.fetchall()
    assert {name for schema, name in found if schema == "public"} == set(tables)
    assert [(schema, name) for schema, name in found if schema != "public"] == []
    assert team.acme.organization.schema_name != "public"
