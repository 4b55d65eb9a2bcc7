"""Typed readers for settings that come from the environment.

Each helper fails loudly with ImproperlyConfigured naming the variable, so a
typo in a deployment shows up at start-up instead of as odd behaviour later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    """The raw value of `name`, or `default` when unset."""
    value = os.environ.get(name)
    return default if value is None else value


def env_bool(name: str, default: bool = False) -> bool:
    """A boolean: 1/0, true/false, yes/no, on/off (any case)."""
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false, 1/0, yes/no, on/off), got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer, optionally bounded."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be <= {maximum}, got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str | None = None, *, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """An absolute URL with one of `schemes`, without a trailing slash."""
    value = os.environ.get(name, default)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise ImproperlyConfigured(f"{name} must be a URL with scheme {'/'.join(schemes)}, got {value!r}")
    return value.rstrip("/")


@dataclass(frozen=True)
class DatabaseURL:
    name: str
    user: str
    password: str
    host: str
    port: str
    options: dict[str, str]


def parse_database_url(name: str, value: str) -> DatabaseURL:
    """Parse postgresql://user:pass@host:port/db?host=/socket/dir."""
    parts = urlsplit(value)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(f"{name} must start with postgresql://, got scheme {parts.scheme!r}")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ImproperlyConfigured(f"{name} must name a database (postgresql://host/<database>)")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    host = query.pop("host", None) or unquote(parts.hostname or "")
    try:
        port = str(parts.port or "")
    except ValueError:
        raise ImproperlyConfigured(f"{name} has an invalid port") from None
    return DatabaseURL(
        name=database,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=host,
        port=port,
        options=query,
    )


def check_redis_url(name: str, value: str) -> str:
    """Accept redis://, rediss:// and unix:// URLs."""
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(f"{name} must be a redis://, rediss:// or unix:// URL, got {value!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ImproperlyConfigured(f"{name} must name a host, got {value!r}")
    return value


def parse_host_ports(name: str, value: str, *, default_port: int) -> list[tuple[str, int]]:
    """`host:port,host2:port` (a bare host gets `default_port`; IPv6 as `[::1]:26379`) as (host, port) pairs."""
    pairs: list[tuple[str, int]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        parts = urlsplit(f"//{item}")
        try:
            port = parts.port or default_port
        except ValueError:
            raise ImproperlyConfigured(f"{name} has an invalid port in {item!r}") from None
        if not parts.hostname or parts.path or parts.query or parts.username:
            raise ImproperlyConfigured(f"{name} must be host:port pairs separated by commas, got {item!r}")
        pairs.append((parts.hostname, port))
    if not pairs:
        raise ImproperlyConfigured(f"{name} must name at least one host:port")
    return pairs


@dataclass(frozen=True)
class RedisSentinel:
    """Where Sentinel is asked for the Redis master, and how to sign in to the master it names."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None

    def master_kwargs(self) -> dict[str, object]:
        """Connection options for the master (redis-py / channels-redis), without the sentinels' own."""
        options: dict[str, object] = {"db": self.db}
        if self.username:
            options["username"] = self.username
        if self.password:
            options["password"] = self.password
        return options

    def sentinel_kwargs(self, *, socket_timeout: float) -> dict[str, object]:
        """Options for the connections to the sentinels themselves: short timeouts, their own password."""
        options: dict[str, object] = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
        if self.sentinel_password:
            options["password"] = self.sentinel_password
        return options

    def url(self) -> str:
        """A redis:// URL naming the master by its Sentinel name (redis-rb's and django-redis's convention);
        never connected to directly: herald.redis_clients asks the sentinels."""
        return f"redis://{self.master_name}/{self.db}"


def parse_redis_sentinel(
    *, sentinels: str, master_name: str | None, redis_url: str | None, sentinel_password: str | None
) -> RedisSentinel:
    """HERALD_REDIS_SENTINELS and HERALD_REDIS_SENTINEL_MASTER, with REDIS_URL (optional beside them) giving the
    master's password and database: `redis://:password@<master name>/<db>`, its host the master's name."""
    hosts = parse_host_ports("HERALD_REDIS_SENTINELS", sentinels, default_port=26379)
    username = password = None
    db = 0
    url_master = None
    if redis_url:
        parts = urlsplit(redis_url)
        if parts.scheme != "redis":
            raise ImproperlyConfigured(
                "With HERALD_REDIS_SENTINELS, REDIS_URL must be redis://[:password@]<master name>/<db> "
                f"(TLS and unix sockets are not supported through Sentinel), got scheme {parts.scheme!r}"
            )
        # The master's name as written (urlsplit's hostname is lower-cased; Sentinel names are not).
        url_master = parts.netloc.rpartition("@")[2].partition(":")[0] or None
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ImproperlyConfigured(f"REDIS_URL's database must be a number, got {path!r}")
        db = int(path or 0)
    name = (master_name or "").strip() or url_master
    if not name:
        raise ImproperlyConfigured(
            "HERALD_REDIS_SENTINELS needs the master's name: set HERALD_REDIS_SENTINEL_MASTER "
            "(or REDIS_URL=redis://<master name>/0)"
        )
    if url_master and url_master != name:
        raise ImproperlyConfigured(
            f"REDIS_URL names master {url_master!r} but HERALD_REDIS_SENTINEL_MASTER is {name!r}: with Sentinel, "
            "REDIS_URL's host is the master's name (the sentinels give its address)"
        )
    return RedisSentinel(
        sentinels=tuple(hosts),
        master_name=name,
        db=db,
        username=username,
        password=password,
        sentinel_password=sentinel_password or None,
    )


def redis_configured() -> bool:
    """REDIS_URL or HERALD_REDIS_SENTINELS is set: Herald has a Redis of its own, no embedded one."""
    return bool(os.environ.get("REDIS_URL") or os.environ.get("HERALD_REDIS_SENTINELS"))
