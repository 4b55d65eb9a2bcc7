"""How a request finds its organisation, in one place.

- secret key (server API) and publishable key (widget HTTP and WebSocket):
  `api_key_resolve(key)`; the key's row is cached in Redis for a minute and
  read from the database again, for a minute, from the moment it is revoked or rolled.
- portal: organisation slug in the URL plus the user's membership
  (`organization_for_member`).
- API requests: `request_secret_key`, `request_publishable_key` and
  `origin_check` read a request's credentials and raise a
  `herald.problems.Problem` with the precise type when refused (the subscriber
  proof of a widget request is notifications' own: notifications.proofs).
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone
from django_tenants.utils import schema_context

from herald.logs import log_organization
from herald.problems import Problem
from tenants.keys import KeyKind, key_hash, key_kind
from tenants.models import ApiKey, Membership, Organization

logger = logging.getLogger(__name__)

KEY_CACHE_SECONDS = 60


@dataclass(frozen=True)
class ResolvedKey:
    """What a request needs to know about the key it came with."""

    api_key_id: int
    kind: KeyKind
    key_hash: str
    organization_id: int
    schema_name: str
    plan: str
    allowed_origins: tuple[str, ...]
    expires_at: datetime | None

    def organization(self) -> Organization:
        """An unsaved Organization carrying what tenant activation needs (no query)."""
        return Organization(id=self.organization_id, schema_name=self.schema_name, plan=self.plan)


def _cache_key(hashed: str) -> str:
    return f"apikey:{hashed}"


# What api_key_cache_forget leaves in a key's cache entry for a minute: lookups read the database meanwhile and,
# writing their result with `add`, cannot put back a state read before the change committed (a lookup that read
# the row just before a revocation and wrote the cache just after it would otherwise keep the key alive).
_CHANGED = "changed"


# While Redis (the shared key cache) is away, keys resolve from PostgreSQL through this process's own short
# cache; it is read only then, so a revocation still applies at once while Redis is up.
LOCAL_KEY_SECONDS = 5.0
# Keys that matched no live row, remembered by this process: a flood of unknown keys costs no query each.
UNKNOWN_KEY_SECONDS = 10.0
LOCAL_KEYS_MAX = 10_000
_local_keys: dict[str, tuple[float, ResolvedKey]] = {}
_unknown_keys: dict[str, float] = {}


def key_recently_unknown(hashed: str) -> bool:
    """Whether this process found no live key with this hash in the last few seconds (no query)."""
    until = _unknown_keys.get(hashed)
    if until is None:
        return False
    if until <= time.monotonic():
        _unknown_keys.pop(hashed, None)
        return False
    return True


def _remember(store: dict[str, Any], hashed: str, value: Any) -> None:
    if len(store) >= LOCAL_KEYS_MAX:
        store.clear()
    store[hashed] = value


def api_key_cache_forget(hashed: str) -> None:
    """Make a key's new state apply at once: its cache entry is replaced by a marker for a minute."""
    _local_keys.pop(hashed, None)
    _unknown_keys.pop(hashed, None)
    with schema_context("public"):
        try:
            cache.set(_cache_key(hashed), _CHANGED, KEY_CACHE_SECONDS)
        except Exception:  # noqa: BLE001 - Redis away: nothing is cached there, and this process forgot it above
            logger.warning("key cache unavailable; %s forgotten in this process only", hashed[:12])


def _resolved_from_row(row: ApiKey) -> ResolvedKey:
    return ResolvedKey(
        api_key_id=row.pk,
        kind=row.kind,  # type: ignore[arg-type]
        key_hash=row.key_hash,
        organization_id=row.organization_id,
        schema_name=row.organization.schema_name,
        plan=row.organization.plan,
        allowed_origins=tuple(row.allowed_origins),
        expires_at=row.expires_at,
    )


def api_key_cache_prime(api_key: ApiKey) -> None:
    """Put a key just issued (its row committed) in the shared cache, so that its first request is a cache hit and
    never a lookup counted against its client's budget of unknown keys. Written with `add`: a change committed
    meanwhile (its marker already there) wins."""
    try:
        with schema_context("public"):
            _cache_store(api_key.key_hash, _resolved_from_row(api_key))
    except Exception:  # noqa: BLE001 - Redis away: the first request looks the key up instead
        logger.warning("key cache unavailable; %s not primed", api_key.key_hash[:12])


def _cache_store(hashed: str, resolved: ResolvedKey) -> None:
    """Cache a lookup's result, unless the entry is there already (the key changed meanwhile: see _CHANGED)."""
    cache.add(_cache_key(hashed), resolved, KEY_CACHE_SECONDS)


def _cache_read(hashed: str) -> tuple[object, bool]:
    """The shared cache's entry for a key and whether that cache answered; with Redis away, this process's own."""
    try:
        return cache.get(_cache_key(hashed)), True
    except Exception:  # noqa: BLE001 - Redis is a cache: resolve from PostgreSQL meanwhile
        found = _local_keys.get(hashed)
        if found is not None and found[0] > time.monotonic():
            return found[1], False
        return None, False


def api_key_resolve(key: str) -> ResolvedKey | None:
    """The live key matching `key`, or None (malformed, unknown, revoked or expired)."""
    if key_kind(key) is None:
        return None
    hashed = key_hash(key)
    if key_recently_unknown(hashed):
        return None
    with schema_context("public"):
        resolved, shared = _cache_read(hashed)
        if not isinstance(resolved, ResolvedKey):
            row = ApiKey.objects.filter(key_hash=hashed, revoked_at__isnull=True).select_related("organization").first()
            if row is None:
                _remember(_unknown_keys, hashed, time.monotonic() + UNKNOWN_KEY_SECONDS)
                return None
            resolved = _resolved_from_row(row)
            _remember(_local_keys, hashed, (time.monotonic() + LOCAL_KEY_SECONDS, resolved))
            if shared:
                try:
                    _cache_store(hashed, resolved)
                except Exception:  # noqa: BLE001 - went away meanwhile
                    logger.warning("key cache unavailable")
    if not hmac.compare_digest(resolved.key_hash, hashed):
        return None
    if resolved.expires_at is not None and resolved.expires_at <= timezone.now():
        return None
    log_organization(resolved.organization_id)
    return resolved


def organization_for_member(*, slug: str, user_id: int) -> tuple[Organization, Membership] | None:
    """The organisation `slug` and the user's membership of it, or None."""
    membership = (
        Membership.objects.select_related("organization").filter(organization__slug=slug, user_id=user_id).first()
    )
    if membership is None:
        return None
    return membership.organization, membership


# --- requests -------------------------------------------------------------------
# How an API request proves what it is. Each function raises herald.problems.Problem
# with the precise type on refusal; the API layer (herald.front, herald.operations) calls them.

PUBLISHABLE_KEY_HEADER = "X-Herald-Publishable-Key"


def _bearer(request: HttpRequest) -> str | None:
    return _bearer_token(request.headers.get("Authorization"))


def _bearer_token(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem("authentication-required", "Authorization must be `Bearer <key>`")
    return token.strip()


def request_secret_key(request: HttpRequest) -> ResolvedKey:
    """The live secret key of a server API request (Authorization: Bearer sk_live_...)."""
    token = _bearer(request)
    if token is None:
        raise Problem("authentication-required")
    secret_key_shape_check(token)
    resolved = api_key_resolve(token)
    if resolved is None:
        raise Problem("invalid-api-key")
    return resolved


def secret_key_shape_check(token: str) -> None:
    """Refuse, without a query, a token that is not a well-formed secret key (Django and the /v1 front share it)."""
    kind = key_kind(token)
    if kind == "publishable":
        raise Problem("publishable-key-not-allowed")
    if kind != "secret":
        raise Problem("invalid-api-key")


def request_publishable_key(request: HttpRequest) -> tuple[ResolvedKey, str | None]:
    """The live publishable key of a widget request, and the subscriber JWT if Authorization carried one.

    The key comes from `X-Herald-Publishable-Key`, `?pk=` or `Authorization: Bearer pk_live_...`.
    """
    key, subscriber_token = publishable_key_given(
        authorization=request.headers.get("Authorization"),
        header=request.headers.get(PUBLISHABLE_KEY_HEADER),
        query=request.GET.get("pk"),
    )
    resolved = api_key_resolve(key)
    if resolved is None:
        raise Problem("invalid-api-key")
    return resolved, subscriber_token


def publishable_key_given(
    *, authorization: str | None, header: str | None, query: str | None
) -> tuple[str, str | None]:
    """The publishable key a widget request names (its shape checked, not resolved) and the subscriber JWT if
    Authorization carried one; Problem when none, two, a secret key or a malformed one is given."""
    bearer = _bearer_token(authorization)
    candidates = [header, query]
    subscriber_token = None
    if bearer is not None:
        if bearer.startswith(("pk_", "sk_")):
            candidates.append(bearer)
        else:
            subscriber_token = bearer
    keys = {c.strip() for c in candidates if c and c.strip()}
    if not keys:
        raise Problem("authentication-required", "Give the publishable key as X-Herald-Publishable-Key or ?pk=")
    if len(keys) > 1:
        raise Problem("invalid-api-key", "Two different publishable keys were given")
    key = keys.pop()
    kind = key_kind(key)
    if kind == "secret":
        raise Problem("secret-key-not-allowed")
    if kind != "publishable":
        raise Problem("invalid-api-key")
    return key, subscriber_token


def origin_check(request: HttpRequest, resolved: ResolvedKey) -> str | None:
    """The request's Origin when the key allows it; None without an Origin; a Problem when refused."""
    from tenants.origins import origin_allowed

    origin = request.headers.get("Origin")
    if not origin:
        return None
    if not origin_allowed(origin, list(resolved.allowed_origins)):
        raise Problem("origin-not-allowed")
    return origin


def origin_allowed_by_any_key(origin: str) -> bool:
    """Whether any live publishable key lists `origin` (CORS preflights carry no key)."""
    from tenants.origins import origin_normalize

    try:
        normalized = origin_normalize(origin)
    except ValidationError:
        return False
    cache_key = f"origin-any:{key_hash(normalized)}"
    with schema_context("public"):
        cached = cache.get(cache_key)
        if cached is None:
            cached = ApiKey.objects.filter(
                kind=ApiKey.Kind.PUBLISHABLE, revoked_at__isnull=True, allowed_origins__contains=[normalized]
            ).exists()
            cache.set(cache_key, cached, KEY_CACHE_SECONDS)
    return bool(cached)
