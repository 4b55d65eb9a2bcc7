"""The /v1 front (herald.front): secret keys and their token buckets checked on the event
loop before Django, for every server-API route and no other."""

from __future__ import annotations

import time

import httpx

from herald.front import SECRET_PATH_PREFIXES
from tenants.keys import key_hash
from tenants.models import ApiKey
from tenants.ratelimit import bucket_key, redis_client
from tests.conftest import Org
from tests.servers import HeraldServer


def test_the_front_covers_every_server_route_and_no_widget_route(herald_server: HeraldServer) -> None:
    schema = httpx.get(herald_server.url + "/v1/openapi.json", timeout=10).json()
    tags = {(path, method): op["tags"] for path, ops in schema["paths"].items() for method, op in ops.items()}
    server = {path for (path, _), t in tags.items() if "server" in t}
    widget = {path for (path, _), t in tags.items() if "widget" in t}
    assert server and widget
    assert all(path.startswith(SECRET_PATH_PREFIXES) for path in server), server
    assert not any(path.startswith(SECRET_PATH_PREFIXES) for path in widget), widget


def _freeze_bucket(org: Org, tokens: int) -> ApiKey:
    """`tokens` in the key's bucket, not refilling for 10 s (its clock set ahead)."""
    row = ApiKey.objects.get(key_hash=key_hash(org.secret_key))
    redis_client().hset(
        bucket_key(row.pk), mapping={"tokens": str(tokens), "ts": str(int(time.time() * 1000) + 10_000)}
    )
    return row


def test_a_django_served_request_takes_one_token_and_touches_last_used(acme: Org, herald_server: HeraldServer) -> None:
    row = _freeze_bucket(acme, 10)
    redis_client().delete(f"herald:lu:{row.pk}")  # the last-used minute is over
    ApiKey.objects.filter(pk=row.pk).update(last_used_at=None)
    auth = {"Authorization": f"Bearer {acme.secret_key}"}
    listed = httpx.get(herald_server.url + "/v1/subscribers", headers=auth, timeout=10)
    assert listed.status_code == 200
    assert "remaining=9" in listed.headers["RateLimit"], listed.headers["RateLimit"]  # one token, not two
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_bad_keys_on_django_served_routes_are_answered_as_before(acme: Org, herald_server: HeraldServer) -> None:
    cases = [
        ({}, 401, "authentication-required"),
        ({"Authorization": "Bearer sk_live_" + "A" * 30}, 401, "invalid-api-key"),
        ({"Authorization": f"Bearer {acme.publishable_key}"}, 401, "publishable-key-not-allowed"),
        ({"Authorization": f"Basic {acme.secret_key}"}, 401, "authentication-required"),
    ]
    for headers, status, kind in cases:
        response = httpx.get(herald_server.url + "/v1/subscribers", headers=headers, timeout=10)
        assert response.status_code == status, (headers, response.text)
        assert response.json()["type"].endswith("/" + kind)


def test_a_refused_key_does_not_reach_django_and_others_are_served(
    acme: Org, globex: Org, herald_server: HeraldServer
) -> None:
    _freeze_bucket(acme, 0)
    auth = {"Authorization": f"Bearer {acme.secret_key}"}
    refused = httpx.put(herald_server.url + "/v1/subscribers/ada", json={"name": "Ada"}, headers=auth, timeout=10)
    assert refused.status_code == 429 and refused.json()["instance"] == "/v1/subscribers/ada"
    assert int(refused.headers["Retry-After"]) >= 1 and refused.headers["RateLimit-Policy"]
    with acme.activate():
        from notifications.models import Subscriber

        assert not Subscriber.objects.exists()
    other = httpx.put(
        herald_server.url + "/v1/subscribers/ada", json={}, headers={"Authorization": f"Bearer {globex.secret_key}"}
    )
    assert other.status_code == 200


def _widget_headers(org: Org, subscriber_id: str, origin: str) -> dict[str, str]:
    from notifications.proofs import subscriber_hash
    from tenants.models import SigningSecret

    secret = SigningSecret.objects.filter(organization=org.organization).values_list("secret", flat=True)[0]
    return {
        "X-Herald-Publishable-Key": org.publishable_key,
        "X-Herald-Subscriber": subscriber_id,
        "X-Herald-Subscriber-Hash": subscriber_hash(secret, subscriber_id),
        "Origin": origin,
    }


def test_a_refused_publishable_key_is_answered_at_the_front_with_cors_until_its_next_token(
    acme: Org, globex: Org, herald_server: HeraldServer
) -> None:
    from tests.conftest import ALLOWED_ORIGIN

    url = herald_server.url + "/v1/inbox/unread-count"
    row = ApiKey.objects.get(key_hash=key_hash(acme.publishable_key))
    # Widget requests spend their subscriber's bucket: ada's is empty, bob's untouched.
    redis_client().hset(bucket_key(row.pk, "ada"), mapping={"tokens": "-99", "ts": str(int(time.time() * 1000))})
    refused_at = time.monotonic()
    first = httpx.get(url, headers=_widget_headers(acme, "ada", ALLOWED_ORIGIN), timeout=10)
    assert first.status_code == 429 and first.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    redis_client().delete(bucket_key(row.pk, "ada"))  # a full bucket in Redis: only the server's memory refuses now
    again = httpx.get(url, headers=_widget_headers(acme, "ada", ALLOWED_ORIGIN), timeout=10)
    by_query = httpx.get(url + f"?pk={acme.publishable_key}", headers={**_widget_headers(acme, "ada", ALLOWED_ORIGIN)})
    elsewhere = httpx.get(url, headers=_widget_headers(acme, "ada", "http://evil.test"), timeout=10)
    assert time.monotonic() - refused_at < 1.8, "too slow to tell memory from Redis"
    bob = httpx.get(url + f"?pk={acme.publishable_key}", headers={**_widget_headers(acme, "bob", ALLOWED_ORIGIN)})
    assert bob.status_code == 200, bob.text
    for response in (again, by_query):
        assert response.status_code == 429 and response.json()["type"].endswith("/rate-limited")
        assert response.json()["instance"] == "/v1/inbox/unread-count"
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
        assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
        assert response.headers["Retry-After"] == "2" and "remaining=0" in response.headers["RateLimit"]
    # An origin the key does not allow is still told so (by Django), without CORS headers.
    assert elsewhere.status_code == 403 and "Access-Control-Allow-Origin" not in elsewhere.headers
    assert elsewhere.json()["type"].endswith("/origin-not-allowed")
    other = httpx.get(url, headers=_widget_headers(globex, "ada", "http://app.globex.test"), timeout=10)
    assert other.status_code == 200, other.text
    time.sleep(max(0.0, refused_at + 2.1 - time.monotonic()))
    assert httpx.get(url, headers=_widget_headers(acme, "ada", ALLOWED_ORIGIN), timeout=10).status_code == 200
