"""Passwords are stored with Argon2; an older PBKDF2 hash still signs in and is upgraded to Argon2 then."""

from __future__ import annotations

import uuid

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User


def test_new_passwords_are_argon2_and_pbkdf2_ones_still_verify_and_upgrade() -> None:
    user = User.objects.create_user(username=uuid.uuid4().hex[:12], password="correct horse 41")
    assert user.password.startswith("argon2$")
    assert user.check_password("correct horse 41") and not user.check_password("wrong horse 41")

    old = User.objects.create_user(username=uuid.uuid4().hex[:12])
    old.password = make_password("battery staple 7", hasher="pbkdf2_sha256")
    old.save(update_fields=["password"])
    assert old.check_password("battery staple 7")
    old.refresh_from_db()
    assert old.password.startswith("argon2$")  # upgraded when it was checked
