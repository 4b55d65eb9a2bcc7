"""Optional TOTP two-factor (allauth.mfa): activate with an authenticator app's code, then sign-in asks for one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
import uuid

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.contrib.auth.models import User
from django.test import Client

from tests.portal.conftest import client_ip

PASSWORD = "two factor password 77"


def totp(secret: str) -> str:
    """The current RFC 6238 code (SHA-1, 6 digits, 30 s), as an authenticator app computes it."""
    if time.time() % 30 > 27:  # too close to the next period: wait for it
        time.sleep(30 - time.time() % 30 + 0.2)
    counter = struct.pack(">Q", int(time.time()) // 30)
    digest = hmac.new(base64.b32decode(secret, casefold=True), counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def test_totp_can_be_turned_on_and_then_guards_sign_in() -> None:
    email = f"mfa-{uuid.uuid4().hex[:8]}@example.test"
    user = User.objects.create_user(username=uuid.uuid4().hex[:12], email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    client = Client(REMOTE_ADDR=client_ip())
    assert client.post("/accounts/login/", {"login": email, "password": PASSWORD}).status_code == 302

    page = client.get("/accounts/2fa/totp/activate/")
    if page.status_code == 302 and page["Location"].startswith("/accounts/reauthenticate/"):  # password again
        assert client.post(page["Location"], {"password": PASSWORD}).status_code == 302
        page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200 and b"data:image/svg+xml" in page.content  # the QR code (CSP: img-src data:)
    secret = client.session["mfa.totp.secret"]
    assert client.post("/accounts/2fa/totp/activate/", {"code": "000000"}).status_code == 200  # wrong: form again
    assert not Authenticator.objects.filter(user=user).exists()
    activated = client.post("/accounts/2fa/totp/activate/", {"code": totp(secret)})
    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=user, type="totp").exists()
    client.post("/accounts/logout/")

    again = Client(REMOTE_ADDR=client_ip())
    first = again.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert first.status_code == 302 and first["Location"] == "/accounts/2fa/authenticate/"
    assert "_auth_user_id" not in again.session
    wrong = again.post("/accounts/2fa/authenticate/", {"code": "123456" if totp(secret) != "123456" else "654321"})
    assert wrong.status_code == 200 and "_auth_user_id" not in again.session
    right = again.post("/accounts/2fa/authenticate/", {"code": totp(secret)})
    assert right.status_code == 302
    assert again.session["_auth_user_id"] == str(user.pk)
