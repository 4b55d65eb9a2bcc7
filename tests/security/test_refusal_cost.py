"""Refused requests are cheap (F4): made-up secret keys cost no database lookup past a small budget per client
address, and a bucket this process has seen empty refuses without a Redis round trip. Another organisation's
requests are served meanwhile. (What refusals cost others' latency: infra/bench/ingest.py's isolation phase.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

from tenants.keys import key_generate, key_hash
from tenants.models import ApiKey
from tenants.ratelimit import bucket_key, redis_client
from tenants.services import api_key_roll, organization_plan_change
from tests.conftest import Org
from tests.security.support import problem_of
from tests.servers import HeraldServer

SEND = {"to": ["ada"], "title": "hello"}


@pytest.fixture
def strict_server(django_db_setup: None) -> Iterator[HeraldServer]:
    """A server of this test's own (its per-process budgets start full): 5 key lookups, refilled at 1/s."""
    env = {"HERALD_UNKNOWN_KEY_BURST": "5", "HERALD_UNKNOWN_KEY_RATE": "1"}
    with HeraldServer(env=env) as server:
        yield server


def _send(http: httpx.Client, key: str) -> httpx.Response:
    return http.post("/v1/notifications", json=SEND, headers={"Authorization": f"Bearer {key}"})


def test_made_up_keys_are_not_looked_up_past_the_address_budget_and_known_keys_still_resolve(
    strict_server: HeraldServer, acme: Org, globex: Org
) -> None:
    with httpx.Client(base_url=strict_server.url, timeout=30) as http:
        # Both organisations' keys are used once: cached, they resolve without a lookup from now on.
        assert _send(http, acme.secret_key).status_code == 202
        assert http.get("/v1/subscribers", headers={"Authorization": f"Bearer {globex.secret_key}"}).status_code == 200
        # Bad input first: malformed keys and a broken checksum are refused without a lookup, so they spend
        # nothing of the budget.
        bad = ["sk_live_short", "sk_live_" + "A" * 28, "pk_live_" + "B" * 28, key_generate("secret")[:-1] + "!", "x"]
        for key in bad:
            refused = _send(http, key)
            assert refused.status_code == 401, (key, refused.text)
            assert problem_of(refused) in {"invalid-api-key", "authentication-required"}
        # 20 made-up keys with valid checksums (anyone can compute CRC32): the first ones are looked up and
        # unknown, then the address's budget is spent and the rest are answered 429 without a lookup.
        answers = [_send(http, key_generate("secret")) for _ in range(20)]
        codes = [a.status_code for a in answers]
        assert 401 in codes and codes.count(429) >= 10, codes
        assert codes.index(429) <= 7, codes  # burst 5 (+ what refilled meanwhile)
        for answer in answers:
            if answer.status_code == 429:
                assert problem_of(answer) == "rate-limited"
                assert int(answer.headers["Retry-After"]) >= 1
                assert "unknown keys" in answer.json()["detail"]
        # Keys already cached still resolve from the same address, on the event-loop route and on Django's.
        assert _send(http, acme.secret_key).status_code == 202
        listed = http.get("/v1/subscribers", headers={"Authorization": f"Bearer {globex.secret_key}"})
        assert listed.status_code == 200, listed.text
        # The made-up key asked again is still refused (remembered unknown, or the budget): never served.
        again = _send(http, answers[0].request.headers["Authorization"].split()[1])
        assert again.status_code in (401, 429)


def _evalsha_calls() -> int:
    stats = redis_client().info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def test_a_flood_over_the_limit_is_refused_without_a_redis_round_trip_each(
    strict_server: HeraldServer, acme: Org, globex: Org
) -> None:
    organization_plan_change(organization=acme.organization, plan="free")  # 50/s, burst 100
    headers = {"Authorization": f"Bearer {acme.secret_key}"}
    before = _evalsha_calls()

    def flood(_: int) -> list[int]:
        with httpx.Client(base_url=strict_server.url, timeout=30) as http:
            return [http.get("/v1/subscribers", headers=headers).status_code for _ in range(15)]

    with ThreadPoolExecutor(max_workers=32) as pool:
        codes = [code for codes in pool.map(flood, range(32)) for code in codes]  # 480 requests
    calls = _evalsha_calls() - before
    other = httpx.get(
        strict_server.url + "/v1/subscribers", headers={"Authorization": f"Bearer {globex.secret_key}"}, timeout=30
    )
    accepted, refused = codes.count(200), codes.count(429)
    assert accepted + refused == len(codes), codes
    assert refused >= 100, (accepted, refused)
    assert other.status_code == 200, other.text  # another organisation's bucket is its own
    # One bucket script call per request the process's own copy of the bucket let through (every accepted one,
    # and the few Redis refused), not one per refusal: before, each refusal after the key's next token was due
    # cost one. Other script calls of the server (none on these routes) would only raise `calls`.
    assert calls <= accepted + 1 + refused // 4, (calls, accepted, refused)


def test_a_key_rolled_moments_ago_is_not_limited_as_unknown(strict_server: HeraldServer, acme: Org) -> None:
    # For a minute after a roll the old key's cache entry marks the change and every request of it reads the
    # database: those lookups are of a key that exists, and must not spend the address's unknown-key budget.
    with httpx.Client(base_url=strict_server.url, timeout=30) as http:
        assert _send(http, acme.secret_key).status_code == 202
        row = ApiKey.objects.get(key_hash=key_hash(acme.secret_key))
        issued = api_key_roll(api_key=row, grace=timedelta(minutes=5))
        old = [_send(http, acme.secret_key).status_code for _ in range(20)]  # burst 5: would be 429 from the 6th
        new = [_send(http, issued.key).status_code for _ in range(3)]
    assert old == [202] * 20, old
    assert new == [202] * 3, new


def test_keys_just_issued_never_spend_the_address_budget(strict_server: HeraldServer, acme: Org, globex: Org) -> None:
    """A key created or rolled is in the shared cache from its commit: its first request is no lookup, so a client
    that rolls or creates keys often is never answered "too many unknown keys" for keys that exist."""
    from tenants.services import api_key_create

    with httpx.Client(base_url=strict_server.url, timeout=30) as http:
        keys = [api_key_create(organization=acme.organization, kind="secret", name=f"n{i}").key for i in range(6)]
        codes = [_send(http, k).status_code for k in keys]
        key = ApiKey.objects.get(key_hash=key_hash(globex.secret_key))
        for _ in range(6):  # each roll issues a new key (and ends the one before it), used at once
            issued = api_key_roll(api_key=key, grace=timedelta(seconds=0))
            codes.append(_send(http, issued.key).status_code)
            key = issued.api_key
        # 12 new keys, past the budget of 5: every one is served.
        assert codes == [202] * 12, codes
        # Made-up keys from the same address still spend it (the budget is there).
        made_up = [_send(http, key_generate("secret")).status_code for _ in range(10)]
        assert 429 in made_up, made_up


def test_refusals_are_answered_after_waits_spread_at_random_so_looping_clients_fall_out_of_step(
    herald_server: HeraldServer, acme: Org
) -> None:
    """A fixed wait kept 64 looping clients in step: their refusals reached the server in bursts that another
    organisation's requests queued behind (its p99 2.7x alone in the isolation bench; spread, 1.5x)."""
    organization_plan_change(organization=acme.organization, plan="free")  # 50/s: -1,000 tokens is 20 s away
    row = ApiKey.objects.get(key_hash=key_hash(acme.secret_key))
    redis_client().hset(bucket_key(row.pk), mapping={"tokens": "-1000", "ts": str(int(time.time() * 1000))})

    def loop(_: int) -> list[tuple[int, float]]:
        answers = []
        with httpx.Client(base_url=herald_server.url, timeout=30) as http:
            for _ in range(10):
                started = time.monotonic()
                status = _send(http, acme.secret_key).status_code
                answers.append((status, time.monotonic() - started))
        return answers

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = [answer for answers in pool.map(loop, range(3)) for answer in answers]
    assert {status for status, _ in answers} == {429}, answers
    waits = sorted(wait for _, wait in answers[1:])  # the first may be Redis's refusal, before it is remembered
    assert waits[0] >= 0.09, waits  # 0.1-0.3 s: a client retrying in a loop makes at most ten a second
    assert waits[-1] - waits[0] >= 0.1, waits  # 29 waits drawn from 0.2 s: a fixed wait has spread only noise


def test_a_key_this_process_served_is_looked_up_again_whatever_its_address_spent(
    strict_server: HeraldServer, acme: Org
) -> None:
    """A live key's entry leaves the shared cache after a minute; its next request is a lookup. Another client at
    the same address flooding made-up keys had emptied the address's budget, and the key was answered 429 (the
    isolation bench's quiet organisation: 6 of its sends)."""
    from herald.compat import tenant_cache_key

    with httpx.Client(base_url=strict_server.url, timeout=30) as http:
        assert _send(http, acme.secret_key).status_code == 202  # served once by this process
        codes = [_send(http, key_generate("secret")).status_code for _ in range(12)]
        assert codes[-1] == 429, codes  # the address's budget (burst 5, 1/s) is spent
        # The key's entry gone from the shared cache, as a minute after its lookup.
        redis_client().delete(tenant_cache_key(f"apikey:{key_hash(acme.secret_key)}", schema_name="public"))
        assert _send(http, acme.secret_key).status_code == 202
        # The made-up keys are still refused.
        assert _send(http, key_generate("secret")).status_code == 429
