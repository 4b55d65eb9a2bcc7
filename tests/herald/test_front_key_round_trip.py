"""The /v1 front takes a secret key's token and reads its key-cache entry in one Redis round trip once it knows
the key's bucket (herald.front._key_and_token): still one token a request, and a revoked or rolled-out key is
refused at once, as when the entry is read on its own."""

from __future__ import annotations

import time

import httpx

from tenants import services
from tenants.keys import key_hash
from tenants.models import ApiKey
from tenants.ratelimit import bucket_key, redis_client
from tests.conftest import Org
from tests.servers import HeraldServer


def _put(server: HeraldServer, key: str, name: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.put(f"{server.url}/v1/subscribers/{name}", json={}, headers=headers, timeout=10)


def _remaining(response: httpx.Response) -> int:
    return int(response.headers["RateLimit"].split("remaining=")[1].split(",")[0].split(";")[0])


def test_a_known_key_spends_one_token_a_request(acme: Org, herald_server: HeraldServer) -> None:
    for _ in range(4):  # both worker processes see the key (each learns its bucket on its first request)
        assert _put(herald_server, acme.secret_key, "warm").status_code == 200
    row = ApiKey.objects.get(key_hash=key_hash(acme.secret_key))
    later = str(int(time.time() * 1000) + 10_000)  # no refill before then
    remaining = []
    for i in range(4):
        redis_client().hset(bucket_key(row.pk), mapping={"tokens": "10", "ts": later})
        answer = _put(herald_server, acme.secret_key, f"s{i}")
        assert answer.status_code == 200
        remaining.append(_remaining(answer))
    assert remaining == [9, 9, 9, 9]  # one token each, not two
    redis_client().hset(bucket_key(row.pk), mapping={"tokens": "0", "ts": later})
    refused = _put(herald_server, acme.secret_key, "s9")
    assert refused.status_code == 429 and refused.json()["type"].endswith("/rate-limited")


def test_a_known_key_revoked_is_refused_at_once(acme: Org, globex: Org, herald_server: HeraldServer) -> None:
    for _ in range(4):
        assert _put(herald_server, acme.secret_key, "warm").status_code == 200
        assert _put(herald_server, globex.secret_key, "warm").status_code == 200
    services.api_key_revoke(api_key=ApiKey.objects.get(key_hash=key_hash(acme.secret_key)))
    for _ in range(4):
        refused = _put(herald_server, acme.secret_key, "after")
        assert refused.status_code == 401 and refused.json()["type"].endswith("/invalid-api-key")
    assert _put(herald_server, globex.secret_key, "after").status_code == 200  # another organisation's key works


def test_a_known_key_rolled_with_no_grace_is_refused_and_its_successor_works(
    acme: Org, herald_server: HeraldServer
) -> None:
    from datetime import timedelta

    for _ in range(4):
        assert _put(herald_server, acme.secret_key, "warm").status_code == 200
    issued = services.api_key_roll(api_key=ApiKey.objects.get(key_hash=key_hash(acme.secret_key)), grace=timedelta(0))
    for _ in range(4):
        assert _put(herald_server, acme.secret_key, "old").status_code == 401
        assert _put(herald_server, issued.key, "new").status_code == 200
