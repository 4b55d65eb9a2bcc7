"""Widget budgets: failed proofs never spend the organisation's budget, each subscriber has its own, and bad
proofs are limited per client address (answered at the front once over the limit)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from notifications.proofs import subscriber_hash
from tenants.keys import key_hash
from tenants.models import ApiKey
from tenants.ratelimit import bucket_key, redis_client
from tests.conftest import ALLOWED_ORIGIN, Org
from tests.notifications.realtime_support import signing_secret
from tests.security.support import problem_of, widget_get
from tests.servers import HeraldServer


def _empty(name: str) -> None:
    """A bucket that has spent its budget: about two seconds from its next token."""
    redis_client().hset(name, mapping={"tokens": "-99", "ts": str(int(time.time() * 1000))})


def _publishable_row(org: Org) -> ApiKey:
    return ApiKey.objects.get(key_hash=key_hash(org.publishable_key))


def _proof(org: Org, subscriber_id: str) -> dict[str, str]:
    return {
        "X-Herald-Subscriber": subscriber_id,
        "X-Herald-Subscriber-Hash": subscriber_hash(signing_secret(org), subscriber_id),
    }


BAD_PROOF = {"X-Herald-Subscriber": "ada", "X-Herald-Subscriber-Hash": "0" * 64}


def test_failed_proofs_never_spend_the_organisations_budget(herald_server: HeraldServer, acme: Org) -> None:
    # Bad proofs first: on a build where they spent the key's budget, the last ones and ada would get 429.
    _empty(bucket_key(_publishable_row(acme).pk))
    for _ in range(10):
        refused = widget_get(herald_server, acme, **BAD_PROOF)
        assert refused.status_code == 401 and problem_of(refused) == "invalid-subscriber-proof"
    served = widget_get(herald_server, acme, **_proof(acme, "ada"))
    assert served.status_code == 200, served.text


def test_a_subscriber_that_spent_its_budget_leaves_the_others_theirs(herald_server: HeraldServer, acme: Org) -> None:
    row = _publishable_row(acme)
    _empty(bucket_key(row.pk, "bob"))
    refused = widget_get(herald_server, acme, **_proof(acme, "bob"))
    assert refused.status_code == 429 and problem_of(refused) == "rate-limited"
    for _ in range(5):
        served = widget_get(herald_server, acme, **_proof(acme, "ada"))
        assert served.status_code == 200, served.text


async def test_bad_proofs_are_limited_per_client_and_other_organisations_are_untouched(
    herald_server: HeraldServer, acme: Org, globex: Org, globex_proof: dict[str, str]
) -> None:
    headers = {"X-Herald-Publishable-Key": acme.publishable_key, "Origin": ALLOWED_ORIGIN, **BAD_PROOF}
    url = herald_server.url + "/v1/inbox/unread-count"
    async with httpx.AsyncClient(timeout=30) as client:
        # 60 at once: the bad-proof burst is 20, refilled at 2/s.
        responses = await asyncio.gather(*(client.get(url, headers=headers) for _ in range(60)))
        codes = sorted(r.status_code for r in responses)
        assert codes.count(401) >= 20 and codes.count(429) >= 20, codes
        for response in responses:
            if response.status_code == 429:
                assert problem_of(response) == "rate-limited"
                assert int(response.headers["Retry-After"]) >= 1
        other = await client.get(
            url,
            headers={
                "X-Herald-Publishable-Key": globex.publishable_key,
                "Origin": "http://app.globex.test",
                **globex_proof,
            },
        )
    assert other.status_code == 200, other.text


@pytest.fixture
def globex_proof(globex: Org) -> dict[str, str]:
    return _proof(globex, "ada")
