"""Redis clients for the code that talks to Redis itself: the key cache read, token buckets, quotas, socket
presence, the readiness probe.

One place knows how Herald reaches Redis: REDIS_URL, or Sentinel (settings.REDIS_SENTINEL), whose sentinels
name the current master. A client on a Sentinel pool asks them again whenever it opens a connection and drops
connections to a master that was replaced, so after a failover the same client reaches the new master; only the
calls made while it happens fail, as they would with Redis down (each caller already falls back for that).
The Django cache (SentinelCachePool) and the channel layer (channels-redis's own Sentinel hosts) are set up for
the same sentinels in herald.settings.
"""

from __future__ import annotations

import asyncio
import weakref
from functools import lru_cache
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from django.conf import settings

from herald.env import RedisSentinel

# How long a question to one sentinel may take before the next one is asked.
SENTINEL_TIMEOUT = 1.0


def _sentinel() -> RedisSentinel | None:
    return getattr(settings, "REDIS_SENTINEL", None)


def redis_sync(*, socket_timeout: float, socket_connect_timeout: float | None = None) -> redis.Redis:
    """A client of the Redis master, for sync code; closing it closes its pool too."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout or socket_timeout,
    }
    config = _sentinel()
    if config is None:
        return redis.Redis.from_url(str(settings.REDIS_URL), **options)
    return _sync_manager(config).master_for(config.master_name, **{**config.master_kwargs(), **options})


def redis_async(*, socket_timeout: float, socket_connect_timeout: float | None = None) -> aioredis.Redis:
    """A client of the Redis master for the running event loop (its connections belong to that loop)."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout or socket_timeout,
    }
    config = _sentinel()
    if config is None:
        return aioredis.Redis.from_url(str(settings.REDIS_URL), **options)
    return _async_manager(config).master_for(config.master_name, **{**config.master_kwargs(), **options})


@lru_cache(maxsize=4)
def _sync_manager(config: RedisSentinel) -> redis.sentinel.Sentinel:
    """One Sentinel manager (and its connections to the sentinels) per process."""
    return redis.sentinel.Sentinel(
        config.sentinels, sentinel_kwargs=config.sentinel_kwargs(socket_timeout=SENTINEL_TIMEOUT)
    )


# Per event loop: an asyncio connection cannot be used from another loop.
_async_managers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiosentinel.Sentinel] = (
    weakref.WeakKeyDictionary()
)


def _async_manager(config: RedisSentinel) -> aiosentinel.Sentinel:
    loop = asyncio.get_running_loop()
    manager = _async_managers.get(loop)
    if manager is None:
        manager = aiosentinel.Sentinel(
            config.sentinels, sentinel_kwargs=config.sentinel_kwargs(socket_timeout=SENTINEL_TIMEOUT)
        )
        _async_managers[loop] = manager
    return manager


class SentinelCachePool(redis.sentinel.SentinelConnectionPool):
    """The Django cache's pool (CACHES OPTIONS pool_class) through Sentinel: Django's RedisCache builds its pool
    with `pool_class.from_url(LOCATION, **options)`; LOCATION only names the master, the sentinels give it."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SentinelCachePool:  # type: ignore[override]
        config = _sentinel()
        if config is None:
            raise RuntimeError("SentinelCachePool is for HERALD_REDIS_SENTINELS only")
        manager = _sync_manager(config)
        options.setdefault("socket_timeout", SENTINEL_TIMEOUT)
        options.setdefault("socket_connect_timeout", SENTINEL_TIMEOUT)
        return cls(config.master_name, manager, is_master=True, **config.master_kwargs(), **options)
