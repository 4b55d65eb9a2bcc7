"""Keys a caller may try on the server API: only a live secret key of the organisation opens it, and each
refusal is a 401 problem."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx

from tenants.keys import key_hash
from tenants.models import ApiKey
from tenants.services import api_key_create, api_key_revoke, api_key_roll
from tests.conftest import Org
from tests.security.support import problem_of
from tests.servers import HeraldServer


def _list(server: HeraldServer, key: str) -> httpx.Response:
    return httpx.get(server.url + "/v1/subscribers", headers={"Authorization": f"Bearer {key}"}, timeout=10)


def test_hostile_keys_are_refused_with_401_problems(herald_server: HeraldServer, acme: Org, globex: Org) -> None:
    revoked = api_key_create(organization=acme.organization, kind="secret", name="revoked").key
    api_key_revoke(api_key=ApiKey.objects.get(key_hash=key_hash(revoked)))
    rolled = api_key_create(organization=acme.organization, kind="secret", name="rolled").key
    api_key_roll(api_key=ApiKey.objects.get(key_hash=key_hash(rolled)), grace=timedelta(seconds=1))
    good = acme.secret_key
    broken_checksum = good[:-1] + ("A" if good[-1] != "A" else "B")
    time.sleep(1.5)  # the rolled key's grace period is over
    cases = {
        "publishable for secret": (acme.publishable_key, "publishable-key-not-allowed"),
        "revoked": (revoked, "invalid-api-key"),
        "rolled past its grace": (rolled, "invalid-api-key"),
        "truncated": (good[:-6], "invalid-api-key"),
        "broken checksum": (broken_checksum, "invalid-api-key"),
        "garbage": ("sk_live_' OR 1=1 --", "invalid-api-key"),
    }
    for name, (key, slug) in cases.items():
        for _ in range(2):  # the second answer may come from the server's memory of unknown keys
            response = _list(herald_server, key)
            assert response.status_code == 401, (name, response.status_code, response.text[:200])
            assert problem_of(response) == slug, name
    # Another organisation's key opens only that organisation.
    with globex.activate():
        from notifications.models import Subscriber

        Subscriber.objects.create(external_id="globex-person")
    other = _list(herald_server, globex.secret_key)
    assert other.status_code == 200
    assert [item["id"] for item in other.json()["items"]] == ["globex-person"]
    assert all(item["id"] != "globex-person" for item in _list(herald_server, good).json()["items"])
