"""Subscriber proofs: how a widget shows which subscriber it speaks for.

The customer's backend signs the subscriber id with the organisation's signing
secret, either as `subscriber_hash = hex(HMAC-SHA256(secret, subscriber_id))`
or as a short-lived HS256 JWT (`sub` = subscriber id, `exp` required). Any
live signing secret of the organisation is accepted, so a rotation has an
overlap. Used by the WebSocket consumer and the widget HTTP API alike.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_to_bytes

import jwt
from django.http import HttpRequest

from herald.problems import Problem
from notifications.schemas import subscriber_id_valid
from tenants.models import SigningSecret
from tenants.resolve import ResolvedKey
from tenants.selectors import signing_secrets_live

JWT_ALGORITHM = "HS256"
# The longest a subscriber token may live, whoever signed it: the tokens endpoint issues at most this.
TOKEN_MAX_LIFETIME_SECONDS = 24 * 3600
# Clock skew allowed between the customer's backend and Herald when checking that lifetime.
TOKEN_CLOCK_SKEW_SECONDS = 60


@dataclass(frozen=True)
class SubscriberProof:
    """A verified proof: who, and until when (None: a hash, which does not expire)."""

    subscriber_id: str
    expires_at: datetime | None


def subscriber_hash(secret: str, subscriber_id: str) -> str:
    """The hex HMAC-SHA256 a customer's backend computes for `subscriber_id`."""
    return hmac.new(secret.encode(), subscriber_id.encode(), hashlib.sha256).hexdigest()


def subscriber_token(secret: str, subscriber_id: str, expires_at: datetime) -> str:
    """A subscriber JWT, as a customer's backend (or Herald's token endpoint) issues it."""
    return jwt.encode({"sub": subscriber_id, "exp": expires_at}, secret, algorithm=JWT_ALGORITHM)


def subscriber_proof_verify(
    *,
    organization_id: int,
    subscriber_id: str,
    subscriber_hash: str | None = None,
    token: str | None = None,
    secrets: list[str] | None = None,
) -> SubscriberProof | None:
    """The verified proof for `subscriber_id`, or None (bad hash, forged/expired token, wrong subscriber).

    Exactly one of `subscriber_hash` and `token` must be given. `secrets`
    defaults to the organisation's live signing secrets (one public-schema query).
    """
    if not subscriber_id_valid(subscriber_id) or (subscriber_hash is None) == (token is None):
        return None
    if secrets is None:
        secrets = signing_secrets_live(organization_id)
    if subscriber_hash is not None:
        if not isinstance(subscriber_hash, str) or len(subscriber_hash) != 64 or not subscriber_hash.isascii():
            return None
        given = subscriber_hash.lower()
        for secret in secrets:
            if hmac.compare_digest(_hash_for(secret, subscriber_id), given):
                return SubscriberProof(subscriber_id=subscriber_id, expires_at=None)
        return None
    if not isinstance(token, str) or len(token) > 4096 or not token.isascii():
        return None
    for secret in secrets:
        try:
            claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]})
        except jwt.InvalidSignatureError:
            continue  # maybe signed with the other live secret
        except jwt.PyJWTError:
            return None  # expired, malformed, missing claims: no other secret changes that
        if claims.get("sub") != subscriber_id:
            return None
        expires_at = _token_expiry(claims)
        if expires_at is None:
            return None
        return SubscriberProof(subscriber_id=subscriber_id, expires_at=expires_at)
    return None


def _token_expiry(claims: dict[str, object]) -> datetime | None:
    """A token's `exp` as a datetime, or None when it is not an integer or lets the token live over 24 h.

    PyJWT accepts `"exp": "1796112845"` (a string it can int()) and years past 9999; neither is a proof.
    The lifetime counts from `iat` when the token has one, else from now.
    """
    exp, iat = claims.get("exp"), claims.get("iat")
    if not _numeric_date(exp) or (iat is not None and not _numeric_date(iat)):
        return None
    assert isinstance(exp, int | float)
    assert iat is None or isinstance(iat, int | float)
    now = time.time()
    start = iat if iat is not None else now
    skew = TOKEN_CLOCK_SKEW_SECONDS
    if exp - start > TOKEN_MAX_LIFETIME_SECONDS + skew or exp - now > TOKEN_MAX_LIFETIME_SECONDS + skew:
        return None
    return datetime.fromtimestamp(exp, tz=UTC)


def _numeric_date(value: object) -> bool:
    """A JWT NumericDate: a finite JSON number (a bool is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _hash_for(secret: str, subscriber_id: str) -> str:
    return subscriber_hash(secret, subscriber_id)


# --- widget requests ------------------------------------------------------------------
# How a widget HTTP request proves its subscriber; herald.operations calls it once the publishable key is resolved.

SUBSCRIBER_HEADER = "X-Herald-Subscriber"
SUBSCRIBER_HASH_HEADER = "X-Herald-Subscriber-Hash"
SUBSCRIBER_TOKEN_HEADER = "X-Herald-Subscriber-Token"  # noqa: S105 - a header name


def request_subscriber_proof(request: HttpRequest, resolved: ResolvedKey, bearer_token: str | None) -> str:
    """The subscriber id a widget request proved (hash or JWT), checked against the organisation's signing secrets."""
    subscriber_id, given_hash, token = subscriber_proof_given(request.headers.get, bearer_token)
    proof = subscriber_proof_verify(
        organization_id=resolved.organization_id, subscriber_id=subscriber_id, subscriber_hash=given_hash, token=token
    )
    if proof is None:
        raise Problem("invalid-subscriber-proof")
    return proof.subscriber_id


def subscriber_proof_given(
    header: Callable[[str], str | None], bearer_token: str | None
) -> tuple[str, str | None, str | None]:
    """What a widget request offers as its subscriber proof: (subscriber id, hash, token), exactly one of the
    last two given; Problem(invalid-subscriber-proof) when it offers none. `header` reads a request header."""
    token = header(SUBSCRIBER_TOKEN_HEADER) or bearer_token
    given_hash = header(SUBSCRIBER_HASH_HEADER)
    subscriber_id = subscriber_header_decode(header(SUBSCRIBER_HEADER))
    if token and not subscriber_id:
        subscriber_id = unverified_subject(token)
    if not subscriber_id or (token is None and given_hash is None):
        raise Problem("invalid-subscriber-proof", "Send X-Herald-Subscriber with X-Herald-Subscriber-Hash, or a token")
    return subscriber_id, None if token else given_hash, token or None


EXT_VALUE_PREFIX = "UTF-8''"


def subscriber_header_decode(value: str | None) -> str | None:
    """The subscriber id an `X-Herald-Subscriber` header names: its bytes read as UTF-8, never as Latin-1.

    Two forms: the id's UTF-8 bytes as they are, or RFC 8187's `UTF-8''<percent-encoded UTF-8>` (what a
    browser's fetch, which refuses header values beyond Latin-1, can send). A value that is not valid UTF-8
    names nobody (None): the HMAC is always over the id's UTF-8, so no other reading of the bytes may pass.
    """
    if not value:
        return None
    try:
        raw = value.encode("latin-1")  # the header's bytes, as the server decoded them
        if value.startswith(EXT_VALUE_PREFIX):
            return unquote_to_bytes(value.removeprefix(EXT_VALUE_PREFIX)).decode("utf-8") or None
        return raw.decode("utf-8")
    except UnicodeError:
        return None


def unverified_subject(token: str) -> str | None:
    """The `sub` a token claims, read before its signature is checked (it is checked right after)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub")
    return subject if isinstance(subject, str) else None


# --- signing secrets, cached for the event loop ------------------------------------------------------
# A reconnect storm verifies thousands of proofs: each process keeps every organisation's live secrets (with
# their ids and ends) in memory, so a socket's auth needs no query of its own for them. The cache is never
# trusted alone: the session statement (notifications.delivery.SESSION_ASYNC_SQL) re-reads the live secrets in
# the same round trip and refuses a proof whose secret is no longer among them, so a secret rotated out in
# another process stops working when its grace ends, whatever this process cached. A proof no cached secret
# verifies re-reads the secrets first (a rotation elsewhere may have added the one it was signed with).


@dataclass(frozen=True)
class LiveSecret:
    """A live signing secret as the cache keeps it."""

    id: int
    secret: str
    expires_at: float | None  # epoch seconds; None: no end yet


SIGNING_SECRETS_ROWS_SQL = f"""
SELECT id, secret, extract(epoch FROM expires_at) FROM public.{SigningSecret._meta.db_table}
WHERE organization_id = %s AND (expires_at IS NULL OR expires_at > now()) ORDER BY id DESC
"""

_secrets_cache: dict[int, tuple[LiveSecret, ...]] = {}
_SECRETS_CACHE_MAX = 10_000


def signing_secrets_cached(organization_id: int) -> tuple[LiveSecret, ...] | None:
    """The organisation's cached live secrets (those past their end dropped), or None when none are cached."""
    found = _secrets_cache.get(organization_id)
    if found is None:
        return None
    now = time.time()
    return tuple(s for s in found if s.expires_at is None or s.expires_at > now)


def signing_secrets_remember(organization_id: int, rows: list[tuple[Any, ...]] | tuple[LiveSecret, ...]) -> None:
    """Cache the organisation's live secrets: rows of SIGNING_SECRETS_ROWS_SQL (id, secret, end) or LiveSecrets."""
    if len(_secrets_cache) >= _SECRETS_CACHE_MAX:
        _secrets_cache.clear()
    _secrets_cache[organization_id] = tuple(
        row
        if isinstance(row, LiveSecret)
        else LiveSecret(int(row[0]), str(row[1]), float(row[2]) if row[2] is not None else None)
        for row in rows
    )


def signing_secrets_forget(organization_id: int) -> None:
    """Drop the organisation's cached secrets (its secrets changed: tenants.signals.signing_secret_rotated)."""
    _secrets_cache.pop(organization_id, None)


async def signing_secrets_load(conn: Any, organization_id: int) -> tuple[LiveSecret, ...]:
    """Read the organisation's live secrets on `conn` (a psycopg async connection) and cache them."""
    cursor = await conn.execute(SIGNING_SECRETS_ROWS_SQL, [organization_id])
    signing_secrets_remember(organization_id, await cursor.fetchall())
    return _secrets_cache[organization_id]


def proof_verify_with(
    secrets: tuple[LiveSecret, ...], *, subscriber_id: str, subscriber_hash: str | None, token: str | None
) -> tuple[SubscriberProof, LiveSecret] | None:
    """The proof and the secret that verifies it, among `secrets`; None when none does."""
    for secret in secrets:
        proof = subscriber_proof_verify(
            organization_id=0,
            subscriber_id=subscriber_id,
            subscriber_hash=subscriber_hash,
            token=token,
            secrets=[secret.secret],
        )
        if proof is not None:
            return proof, secret
    return None
