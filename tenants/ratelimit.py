"""Per-key rate limits (a token bucket in Redis) and a cheap `last_used_at`.

One Lua script call per request does both: it takes a token from the key's
bucket (refilled at the plan's rate, capped at its burst, Redis' own clock)
and, when the request is let through, sets a one-minute marker with SET NX;
only the request that set the marker writes `last_used_at`, so a key's row is
updated at most once a minute however busy the key is. Buckets are per key,
so one organisation hammering the API never drains another's.

If Redis cannot be reached the request is let through: a limiter outage must
not become an API outage.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone

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


def publishable_identity(key_hash: str) -> str:
    return "pk " + key_hash


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
    return redis.Redis.from_url(str(settings.REDIS_URL), socket_timeout=1.0, socket_connect_timeout=1.0)


@lru_cache(maxsize=1)
def _script() -> redis.commands.core.Script:
    return redis_client().register_script(_SCRIPT)


def bucket_key(api_key_id: int) -> str:
    return f"herald:rl:{int(api_key_id)}"


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
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(str(settings.REDIS_URL), socket_timeout=1.0, socket_connect_timeout=1.0)
    return client.register_script(_SCRIPT)


async def rate_limit_take_async(*, api_key_id: int, plan: str) -> tuple[RateDecision, bool]:
    """rate_limit_take for async code on one long-lived loop; also says whether to touch `last_used_at`.

    The caller writes `last_used_at` itself when told to (in its own transaction).
    """
    limits = plan_rate(plan)
    rate, burst = float(limits.rate_per_second), int(limits.burst)
    window = max(1, math.ceil(burst / rate))
    try:
        allowed, remaining, retry_ms, touch = await _async_script()(
            keys=[bucket_key(api_key_id), _last_used_key(api_key_id)], args=[rate, burst]
        )
    except redis.RedisError:
        logger.warning("rate limiter unavailable; letting the request through", exc_info=True)
        return RateDecision(allowed=True, limit=burst, remaining=burst, retry_after=0, window=window), False
    return _decision(rate, burst, window, allowed, remaining, retry_ms), bool(touch)


def rate_limit_take(*, api_key_id: int, plan: str) -> RateDecision:
    """Take one token from the key's bucket; touch `last_used_at` at most once a minute."""
    limits = plan_rate(plan)
    rate, burst = float(limits.rate_per_second), int(limits.burst)
    window = max(1, math.ceil(burst / rate))
    try:
        allowed, remaining, retry_ms, touch = _script()(
            keys=[bucket_key(api_key_id), _last_used_key(api_key_id)], args=[rate, burst]
        )
    except redis.RedisError:
        logger.warning("rate limiter unavailable; letting the request through", exc_info=True)
        return RateDecision(allowed=True, limit=burst, remaining=burst, retry_after=0, window=window)
    if touch:
        ApiKey.objects.filter(pk=api_key_id).update(last_used_at=timezone.now())
    return _decision(rate, burst, window, allowed, remaining, retry_ms)
