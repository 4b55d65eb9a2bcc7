"""Per-key rate limits (a token bucket in Redis) and a cheap `last_used_at`.

One Lua script call per request does both: it takes a token from the key's
bucket (refilled at the plan's rate, capped at its burst, Redis' own clock)
and, when the request is let through, sets a one-minute marker with SET NX;
only the request that set the marker writes `last_used_at`, so a key's row is
updated at most once a minute however busy the key is. Buckets are per key,
so one organisation hammering the API never drains another's.

If Redis cannot be reached, the same bucket is kept in this process instead
(`LocalBuckets`) until Redis answers again: a limiter outage must not become
an API outage, nor an open door.

Widget requests spend their subscriber's own bucket (`subject`), never the
organisation's, and a failed subscriber proof spends nothing of the
organisation: it takes a token from a small per-process bucket of the client's
address and publishable key (`bad_proof_take`), and once that is empty the
server's front answers that address itself until its next token.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone

from herald.redis_clients import redis_async, redis_sync
from tenants.models import ApiKey
from tenants.plans import plan_rate

logger = logging.getLogger(__name__)

_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local retry_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
local touch = 0
if allowed == 1 and redis.call('SET', KEYS[2], '1', 'NX', 'EX', 60) then
  touch = 1
end
return {allowed, math.floor(tokens), retry_ms, touch}
"""

LAST_USED_SECONDS = 60

# The same, also reading one more key (KEYS[3]: the key cache's entry for this key) in the same round trip: the
# /v1 front takes a token and reads the key it is for at once, for a key whose bucket it already knows.
_SCRIPT_WITH_ENTRY = _SCRIPT.replace(
    "return {allowed, math.floor(tokens), retry_ms, touch}",
    "return {allowed, math.floor(tokens), retry_ms, touch, redis.call('GET', KEYS[3])}",
)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # seconds, 0 when allowed
    window: int  # seconds for an empty bucket to refill
    retry_ms: int = 0  # milliseconds until the next token, when refused (Retry-After rounds it up to seconds)

    def headers(self) -> dict[str, str]:
        """RateLimit / RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers) and, when refused, Retry-After."""
        reset = self.retry_after if not self.allowed else 0
        headers = {
            "RateLimit": f"limit={self.limit}, remaining={self.remaining}, reset={reset}",
            "RateLimit-Policy": f"{self.limit};w={self.window}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


@dataclass
class Refusal:
    """A key the bucket refused, remembered by this process until its next token."""

    until: float  # time.monotonic() of the next token
    decision: RateDecision
    origins: tuple[str, ...] = ()  # a publishable key's allowed origins (its 429s carry CORS headers for them)
    answers: dict[str, Any] = field(default_factory=dict)  # encoded 429s, filled by whoever answers


# By the request's Authorization header for a secret key, by publishable_identity() for a publishable key; only
# a key that resolved and was refused gets here. Written from Django's worker thread and the event loop: single
# dict operations only.
_refusals: dict[str, Refusal] = {}
REFUSALS_MAX = 10_000


def publishable_identity(key_hash: str, subscriber_id: str | None = None) -> str:
    """The refusal memory's name for a publishable key's bucket, or for one subscriber's bucket of it."""
    return "pk " + key_hash if subscriber_id is None else f"pk {key_hash} s {subscriber_id}"


def bad_proof_identity(key_hash: str, client: str) -> str:
    """The refusal memory's name for one client address's failed proofs on a publishable key."""
    return f"badproof {key_hash} {client}"


def refusal_remember(identity: str | None, decision: RateDecision, origins: tuple[str, ...] = ()) -> None:
    """Remember that the bucket refused the key behind `identity`, until its next token."""
    if not identity or decision.allowed or decision.retry_ms <= 0:
        return
    if len(_refusals) >= REFUSALS_MAX:
        _refusals.clear()
    until = time.monotonic() + decision.retry_ms / 1000
    _refusals[identity] = Refusal(until=until, decision=decision, origins=origins)


def refusal_pending() -> bool:
    return bool(_refusals)


def refusal_active(identity: str) -> Refusal | None:
    """The refusal still standing for `identity` (its bucket has no token yet), if any."""
    found = _refusals.get(identity)
    if found is None:
        return None
    if found.until <= time.monotonic():
        _refusals.pop(identity, None)
        return None
    return found


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    """One client (and connection pool) per process."""
    return redis_sync(socket_timeout=1.0)


@lru_cache(maxsize=1)
def _script() -> redis.commands.core.Script:
    return redis_client().register_script(_SCRIPT)


def bucket_key(api_key_id: int, subject: str | None = None) -> str:
    """A key's bucket in Redis, or (widget requests) the bucket of one subscriber of that key."""
    if subject is None:
        return f"herald:rl:{int(api_key_id)}"
    return f"herald:rl:{int(api_key_id)}:s:{hashlib.sha256(subject.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}"


class LocalBuckets:
    """Token buckets in this process: the limiter while Redis is away, and the bad-proof limiter."""

    MAX = 50_000

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, monotonic time)
        self._lock = threading.Lock()

    def take(self, name: str, rate: float, burst: int) -> tuple[bool, float, int]:
        """(allowed, tokens left, milliseconds to the next token when refused)."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(name, (float(burst), now))
            tokens = min(float(burst), tokens + (now - at) * rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            if len(self._buckets) >= self.MAX and name not in self._buckets:
                self._buckets.clear()
            self._buckets[name] = (tokens, now)
        retry_ms = 0 if allowed else math.ceil((1 - tokens) * 1000 / rate)
        return allowed, tokens, retry_ms


_local = LocalBuckets()
_bad_proofs = LocalBuckets()
# The same buckets kept in this process in front of Redis's: this process's share of a key's traffic can only
# drain its own copy as fast as or faster than all processes drain the shared one, so a token refused here is
# one Redis would refuse too; a flood over the limit is then refused without a Redis round trip.
_first = LocalBuckets()
# Secret-key lookups in the database (keys the shared cache does not hold), per client address (this process
# only): well-formed unknown keys cost a query each, so past this bucket an address's uncached keys are answered
# 429 at the front.
_unknown_keys = LocalBuckets()


class _RedisHealth:
    """After a failed Redis call, skip Redis for a moment: each call would otherwise wait to fail."""

    PAUSE_SECONDS = 1.0

    def __init__(self) -> None:
        self.down_until = 0.0

    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def failed(self) -> None:
        if self.available():
            logger.warning("rate limiter's Redis unavailable; buckets kept in this process meanwhile")
        self.down_until = time.monotonic() + self.PAUSE_SECONDS


_redis_health = _RedisHealth()


def _local_decision(name: str, rate: float, burst: int, window: int) -> RateDecision:
    allowed, tokens, retry_ms = _local.take(name, rate, burst)
    return _decision(rate, burst, window, int(allowed), int(tokens), retry_ms)


def _first_decision(name: str, rate: float, burst: int, window: int) -> RateDecision | None:
    """The refusal of this process's copy of a bucket, or None when it has a token (then Redis decides)."""
    allowed, tokens, retry_ms = _first.take(name, rate, burst)
    if allowed:
        return None
    return _decision(rate, burst, window, 0, int(tokens), retry_ms)


def unknown_key_identity(client: str) -> str:
    """The refusal memory's name for one client address's secret-key lookups in the database."""
    return f"unknownkey {client}"


def unknown_key_take(client: str) -> RateDecision:
    """Take a token from the bucket of a client address's secret-key lookups in the database (this process only)."""
    rate, burst = float(settings.HERALD_UNKNOWN_KEY_RATE), int(settings.HERALD_UNKNOWN_KEY_BURST)
    window = max(1, math.ceil(burst / rate))
    allowed, tokens, retry_ms = _unknown_keys.take(client, rate, burst)
    return _decision(rate, burst, window, int(allowed), int(tokens), retry_ms)


def bad_proof_take(identity: str) -> RateDecision:
    """Take a token from the bucket of a client's failed proofs on one publishable key (this process only)."""
    rate, burst = float(settings.HERALD_BAD_PROOF_RATE), int(settings.HERALD_BAD_PROOF_BURST)
    window = max(1, math.ceil(burst / rate))
    allowed, tokens, retry_ms = _bad_proofs.take(identity, rate, burst)
    return _decision(rate, burst, window, int(allowed), int(tokens), retry_ms)


def _last_used_key(api_key_id: int) -> str:
    return f"herald:lu:{int(api_key_id)}"


def _decision(limits_rate: float, burst: int, window: int, allowed: int, remaining: int, retry_ms: int) -> RateDecision:
    return RateDecision(
        allowed=bool(allowed),
        limit=burst,
        remaining=max(0, int(remaining)),
        retry_after=max(1, math.ceil(int(retry_ms) / 1000)) if not allowed else 0,
        window=window,
        retry_ms=int(retry_ms) if not allowed else 0,
    )


@lru_cache(maxsize=1)
def _async_script() -> Any:
    client = redis_async(socket_timeout=1.0)
    return client.register_script(_SCRIPT)


async def rate_limit_take_async(*, api_key_id: int, plan: str, subject: str | None = None) -> tuple[RateDecision, bool]:
    """rate_limit_take for async code on one long-lived loop (a `subject`: a widget subscriber's bucket); also
    says whether to touch `last_used_at`.

    The caller writes `last_used_at` itself when told to (in its own transaction).
    """
    limits = plan_rate(plan)
    rate, burst = float(limits.rate_per_second), int(limits.burst)
    window = max(1, math.ceil(burst / rate))
    name = bucket_key(api_key_id, subject)
    if not _redis_health.available():
        return _local_decision(name, rate, burst, window), False
    first = _first_decision(name, rate, burst, window)
    if first is not None:
        return first, False
    try:
        allowed, remaining, retry_ms, touch = await _async_script()(
            keys=[name, _last_used_key(api_key_id)], args=[rate, burst]
        )
    except (redis.RedisError, OSError):
        _redis_health.failed()
        return _local_decision(name, rate, burst, window), False
    return _decision(rate, burst, window, allowed, remaining, retry_ms), bool(touch)


@lru_cache(maxsize=1)
def _async_script_with_entry() -> Any:
    return _async_script().registered_client.register_script(_SCRIPT_WITH_ENTRY)


async def rate_limit_take_with_entry_async(
    *, api_key_id: int, plan: str, entry: str
) -> tuple[RateDecision, bool, bytes | None] | None:
    """rate_limit_take_async that also reads the Redis key `entry` in the same round trip: (decision, touch, the
    entry's value or None); None while Redis is away (the caller takes its token the usual way)."""
    if not _redis_health.available():
        return None
    limits = plan_rate(plan)
    rate, burst = float(limits.rate_per_second), int(limits.burst)
    window = max(1, math.ceil(burst / rate))
    name = bucket_key(api_key_id)
    if _first_decision(name, rate, burst, window) is not None:
        # This process's copy of the bucket is empty: no Redis round trip for a token Redis would refuse too.
        # The caller takes the usual way (the key resolved, then rate_limit_take_async refuses it locally).
        return None
    try:
        allowed, remaining, retry_ms, touch, value = await _async_script_with_entry()(
            keys=[name, _last_used_key(api_key_id), entry], args=[rate, burst]
        )
    except (redis.RedisError, OSError):
        _redis_health.failed()
        return None
    return _decision(rate, burst, window, allowed, remaining, retry_ms), bool(touch), value


def rate_limit_take(*, api_key_id: int, plan: str, subject: str | None = None) -> RateDecision:
    """Take one token from the key's bucket (or its `subject`'s: a widget subscriber); touch `last_used_at` at
    most once a minute."""
    limits = plan_rate(plan)
    rate, burst = float(limits.rate_per_second), int(limits.burst)
    window = max(1, math.ceil(burst / rate))
    name = bucket_key(api_key_id, subject)
    if not _redis_health.available():
        return _local_decision(name, rate, burst, window)
    first = _first_decision(name, rate, burst, window)
    if first is not None:
        return first
    try:
        allowed, remaining, retry_ms, touch = _script()(keys=[name, _last_used_key(api_key_id)], args=[rate, burst])
    except (redis.RedisError, OSError):
        _redis_health.failed()
        return _local_decision(name, rate, burst, window)
    if touch:
        ApiKey.objects.filter(pk=api_key_id).update(last_used_at=timezone.now())
    return _decision(rate, burst, window, allowed, remaining, retry_ms)
