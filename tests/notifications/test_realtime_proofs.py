"""Subscriber proofs (notifications.proofs): HMAC hash or HS256 JWT, any live signing secret."""

from __future__ import annotations

from datetime import timedelta

import jwt
from django.utils import timezone

from notifications.proofs import subscriber_hash, subscriber_proof_verify, subscriber_token
from tenants.models import SigningSecret
from tests.conftest import Org


def secret_of(org: Org) -> str:
    return SigningSecret.objects.filter(organization=org.organization).values_list("secret", flat=True)[0]


def test_hash_of_the_subscriber_id_with_the_signing_secret_is_accepted(acme: Org) -> None:
    proof = subscriber_proof_verify(
        organization_id=acme.organization.pk,
        subscriber_id="user-1",
        subscriber_hash=subscriber_hash(secret_of(acme), "user-1"),
    )
    assert proof is not None and proof.subscriber_id == "user-1" and proof.expires_at is None


def test_hash_for_another_subscriber_or_organisation_is_refused(acme: Org, globex: Org) -> None:
    good = subscriber_hash(secret_of(acme), "user-1")
    assert (
        subscriber_proof_verify(organization_id=acme.organization.pk, subscriber_id="user-2", subscriber_hash=good)
        is None
    )
    assert (
        subscriber_proof_verify(organization_id=globex.organization.pk, subscriber_id="user-1", subscriber_hash=good)
        is None
    )
    assert (
        subscriber_proof_verify(organization_id=acme.organization.pk, subscriber_id="user-1", subscriber_hash="0" * 64)
        is None
    )


def test_token_with_sub_and_exp_is_accepted_until_exp(acme: Org) -> None:
    exp = timezone.now() + timedelta(minutes=5)
    token = subscriber_token(secret_of(acme), "user-1", exp)
    proof = subscriber_proof_verify(organization_id=acme.organization.pk, subscriber_id="user-1", token=token)
    assert proof is not None and proof.expires_at is not None
    assert abs((proof.expires_at - exp).total_seconds()) < 1


def test_expired_forged_foreign_and_exp_less_tokens_are_refused(acme: Org, globex: Org) -> None:
    secret = secret_of(acme)
    expired = subscriber_token(secret, "user-1", timezone.now() - timedelta(seconds=1))
    forged = subscriber_token("not-this-organisations-signing-secret", "user-1", timezone.now() + timedelta(minutes=5))
    foreign = subscriber_token(secret_of(globex), "user-1", timezone.now() + timedelta(minutes=5))
    no_exp = jwt.encode({"sub": "user-1"}, secret, algorithm="HS256")
    other_sub = subscriber_token(secret, "user-2", timezone.now() + timedelta(minutes=5))
    none_alg = jwt.encode({"sub": "user-1", "exp": timezone.now() + timedelta(minutes=5)}, None, algorithm="none")
    for token in (expired, forged, foreign, no_exp, other_sub, none_alg, "garbage"):
        assert (
            subscriber_proof_verify(organization_id=acme.organization.pk, subscriber_id="user-1", token=token) is None
        )


def test_rotated_secret_keeps_working_until_it_expires(acme: Org) -> None:
    old = SigningSecret.objects.get(organization=acme.organization)
    SigningSecret.objects.create(organization=acme.organization, secret="whsk_new-secret-for-rotation-test")
    old_hash = subscriber_hash(old.secret, "user-1")
    new_hash = subscriber_hash("whsk_new-secret-for-rotation-test", "user-1")
    org_id = acme.organization.pk
    assert subscriber_proof_verify(organization_id=org_id, subscriber_id="user-1", subscriber_hash=old_hash) is not None
    assert subscriber_proof_verify(organization_id=org_id, subscriber_id="user-1", subscriber_hash=new_hash) is not None
    old.expires_at = timezone.now() - timedelta(seconds=1)
    old.save(update_fields=["expires_at"])
    assert subscriber_proof_verify(organization_id=org_id, subscriber_id="user-1", subscriber_hash=old_hash) is None
    assert subscriber_proof_verify(organization_id=org_id, subscriber_id="user-1", subscriber_hash=new_hash) is not None


def test_both_or_neither_proof_and_bad_subscriber_ids_are_refused(acme: Org) -> None:
    secret = secret_of(acme)
    h = subscriber_hash(secret, "user-1")
    t = subscriber_token(secret, "user-1", timezone.now() + timedelta(minutes=5))
    org_id = acme.organization.pk
    assert subscriber_proof_verify(organization_id=org_id, subscriber_id="user-1", subscriber_hash=h, token=t) is None
    assert subscriber_proof_verify(organization_id=org_id, subscriber_id="user-1") is None
    for bad in ("", "x" * 256, "tab\there"):
        assert (
            subscriber_proof_verify(
                organization_id=org_id, subscriber_id=bad, subscriber_hash=subscriber_hash(secret, bad)
            )
            is None
        )
