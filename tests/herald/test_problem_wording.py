"""Every problem document a customer can cause says what to fix, in words, through the real server.

Each problem type of herald.problems is walked (a new type without a case here fails the walk), then the
common first-hour mistakes. The send routes run on the lean ASGI path under uvicorn and through django-ninja
under the Django test client: their errors must read the same.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest

from herald.problems import PROBLEM_BASE, PROBLEM_TYPES
from tenants.keys import key_hash
from tenants.models import ApiKey
from tenants.ratelimit import bucket_key, redis_client
from tests.billing.support import messages_insert
from tests.conftest import ALLOWED_ORIGIN, Org
from tests.notifications.api_support import Api, subscriber_hash_for
from tests.servers import HeraldServer

# What no message may show: Python class names, regexes, pydantic's prefixes, exception class names.
FORBIDDEN = [
    re.compile(r"\b\w+(In|Out|Page)\b"),  # NotificationIn, BatchIn, SubscriberIn ...
    re.compile(r"\^\[|\\x[0-9a-f]{2}|\{1,255\}"),  # a regex
    re.compile(r"Value error|Assertion failed|instance of|valid dictionary"),
    re.compile(r"JSONDecodeError|UnicodeDecodeError|ValueError"),
]


def _call(
    server: HeraldServer, method: str, path: str, *, key: str | None = None, raw: bytes | None = None, **headers: str
) -> httpx.Response:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if raw is not None:
        headers.setdefault("Content-Type", "application/json")
    return httpx.request(method, server.url + path, content=raw, headers=headers, timeout=20)


def _problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/problem+json", response.text[:300]
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + slug and body["status"] == status
    assert body["title"] and body["detail"]
    words = [body["detail"]] + [str(error["msg"]) for error in body.get("errors", [])]
    for text in words:
        for pattern in FORBIDDEN:
            assert not pattern.search(text), (pattern.pattern, text)
    return body


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def test_every_problem_type_reads_as_an_instruction(acme: Org, herald_server: HeraldServer) -> None:
    s = herald_server
    sk, pk = acme.secret_key, acme.publishable_key
    widget = {"X-Herald-Publishable-Key": pk, "X-Herald-Subscriber": "ada", "Origin": ALLOWED_ORIGIN}
    seen: dict[str, dict[str, Any]] = {}
    messages_insert(acme, 9_999)  # Free's month of sends but one, as rows: the one below fills it

    def check(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
        seen[slug] = _problem(response, status, slug)
        return seen[slug]

    bad = check(_call(s, "POST", "/v1/notifications", key=sk, raw=b'{"to": ["a"], "title": }'), 400, "invalid-json")
    assert bad["detail"] == "The request body is not valid JSON: Expecting value at line 1, column 24"
    check(_call(s, "GET", "/v1/subscribers?cursor=not-a-cursor", key=sk), 400, "invalid-cursor")
    check(
        _call(
            s,
            "POST",
            "/v1/topics/t/subscribers",
            key=sk,
            raw=_json({"subscriber_ids": ["a"]}),
            **{"Idempotency-Key": "k" * 256},
        ),
        400,
        "invalid-idempotency-key",
    )
    check(_call(s, "GET", "/v1/subscribers"), 401, "authentication-required")
    check(_call(s, "GET", "/v1/subscribers", key=sk[:-2] + "zz"), 401, "invalid-api-key")
    check(_call(s, "GET", "/v1/subscribers", key=pk), 401, "publishable-key-not-allowed")
    check(_call(s, "GET", "/v1/inbox/unread-count", key=sk), 401, "secret-key-not-allowed")
    proof = check(
        _call(s, "GET", "/v1/inbox/unread-count", **widget, **{"X-Herald-Subscriber-Hash": "0" * 64}),
        401,
        "invalid-subscriber-proof",
    )
    assert "X-Herald-Subscriber-Hash" in proof["detail"]
    origin = {**widget, "Origin": "https://evil.test", "X-Herald-Subscriber-Hash": subscriber_hash_for(acme, "ada")}
    check(_call(s, "GET", "/v1/inbox/unread-count", **origin), 403, "origin-not-allowed")
    check(_call(s, "GET", "/v1/subscribers/nobody", key=sk), 404, "not-found")
    check(_call(s, "PATCH", "/v1/subscribers", key=sk), 405, "method-not-allowed")
    too_big = _json({"to": ["a"], "title": "x", "body": "y" * 300_000})
    check(_call(s, "POST", "/v1/notifications", key=sk, raw=too_big), 413, "payload-too-large")
    check(_call(s, "GET", "/v1/subscribers?limit=0", key=sk), 422, "validation-error")
    first = _call(
        s,
        "POST",
        "/v1/notifications",
        key=sk,
        raw=_json({"to": ["a"], "title": "1"}),
        **{"Idempotency-Key": "wording-1"},
    )
    assert first.status_code == 202
    check(
        _call(
            s,
            "POST",
            "/v1/notifications",
            key=sk,
            raw=_json({"to": ["a"], "title": "2"}),
            **{"Idempotency-Key": "wording-1"},
        ),
        422,
        "idempotency-key-reused",
    )
    quota = check(
        _call(s, "POST", "/v1/notifications", key=sk, raw=_json({"to": ["a"], "title": "3"})), 429, "quota-exceeded"
    )
    assert "notifications a month are used up" in quota["detail"] and quota["resets_at"]
    row = ApiKey.objects.get(key_hash=key_hash(sk))
    redis_client().hset(bucket_key(row.pk), mapping={"tokens": "-100", "ts": str(int(time.time() * 1000) + 10_000)})
    check(_call(s, "GET", "/v1/subscribers", key=sk), 429, "rate-limited")
    # A Host that Herald does not serve (Django's DisallowedHost), on a portal path: 400 as a problem document.
    check(_call(s, "GET", "/", Host="evil.example"), 400, "bad-request")
    # The session's server has no Stripe keys: its webhook says so. The webhook's own refusals
    # (invalid-webhook-signature, webhook-event-refused) are walked with a secret in tests/billing/test_webhook.py.
    check(_call(s, "POST", "/billing/stripe/webhook", raw=b"{}"), 503, "billing-not-configured")
    webhook = {"invalid-webhook-signature", "webhook-event-refused"}
    # internal-error and service-unavailable are Herald's faults, never the customer's: no request may cause them
    # (tests/notifications/test_api_send_faults.py causes the 503 by cutting the database away).
    assert set(seen) == set(PROBLEM_TYPES) - {"internal-error", "service-unavailable"} - webhook
    assert "Retry after" in PROBLEM_TYPES["service-unavailable"].description


def test_malformed_json_gives_line_column_and_reason(acme: Org, herald_server: HeraldServer) -> None:
    body = b'{\n  "to": ["a"],\n  "title": "x",\n}'
    for method, path in (("POST", "/v1/notifications"), ("PUT", "/v1/subscribers/ada")):
        problem = _problem(_call(herald_server, method, path, key=acme.secret_key, raw=body), 400, "invalid-json")
        assert problem["detail"] == (
            "The request body is not valid JSON: Expecting property name enclosed in double quotes at line 4, column 1"
        )
    not_utf8 = _call(herald_server, "POST", "/v1/notifications", key=acme.secret_key, raw=b'{"title": "\xff"}')
    assert "not UTF-8: byte 11" in _problem(not_utf8, 400, "invalid-json")["detail"]


def _send_both(org: Org, server: HeraldServer, raw: bytes, path: str = "/v1/notifications") -> dict[str, Any]:
    """The problem from the lean path (uvicorn) and from django-ninja (test client): they must be the same."""
    lean = _problem(_call(server, "POST", path, key=org.secret_key, raw=raw), 422, "validation-error")
    django = Api(org.secret_key).call("POST", path, raw=raw)
    assert django.status_code == 422
    assert {k: v for k, v in django.json().items() if k != "instance"} == {
        k: v for k, v in lean.items() if k != "instance"
    }
    return lean


def test_an_empty_body_says_a_json_object_is_expected(acme: Org, herald_server: HeraldServer) -> None:
    for path in ("/v1/notifications", "/v1/notifications/batch"):
        problem = _send_both(acme, herald_server, b"", path)
        assert problem["detail"] == "The request body is empty (or null): send a JSON object"
    put = _call(herald_server, "PUT", "/v1/subscribers/ada", key=acme.secret_key, raw=b"")
    assert _problem(put, 422, "validation-error")["detail"] == "The request body is empty (or null): send a JSON object"


def test_two_audiences_say_which_were_given(acme: Org, herald_server: HeraldServer) -> None:
    problem = _send_both(acme, herald_server, _json({"to": ["a"], "topic": "news", "title": "x"}))
    assert "this request gave `to` and `topic`" in problem["detail"]
    none = _send_both(acme, herald_server, _json({"title": "x"}))
    assert "give an audience" in none["detail"]


def test_a_bad_subscriber_id_says_which_characters_are_allowed(acme: Org, herald_server: HeraldServer) -> None:
    problem = _send_both(acme, herald_server, _json({"to": ["ok", "team/alice", " "], "title": "x"}))
    assert [error["field"] for error in problem["errors"]] == ["to.1", "to.2"]
    for error in problem["errors"]:
        assert error["msg"] == (
            "a subscriber id is 1-255 characters, not only spaces; `/` and control characters are not allowed"
        )


def test_a_subscriber_id_of_only_spaces_is_refused(acme: Org, herald_server: HeraldServer) -> None:
    put = _call(herald_server, "PUT", "/v1/subscribers/%20%20", key=acme.secret_key, raw=b"{}")
    problem = _problem(put, 422, "validation-error")
    assert problem["errors"][0]["field"] == "subscriber_id" and "not only spaces" in problem["errors"][0]["msg"]
    with acme.activate():
        from notifications.models import Subscriber

        assert not Subscriber.objects.filter(external_id__in=[" ", "  "]).exists()


def test_an_encoded_slash_in_a_subscriber_id_says_slash_is_not_allowed(acme: Org, herald_server: HeraldServer) -> None:
    put = _call(herald_server, "PUT", "/v1/subscribers/team%2Falice", key=acme.secret_key, raw=b"{}")
    problem = _problem(put, 422, "validation-error")
    assert problem["detail"] == (
        "subscriber_id: `/` is not allowed in a subscriber id (it was sent as %2F); choose ids without `/`"
    )
    topic = _call(herald_server, "PUT", "/v1/topics/a%2fb", key=acme.secret_key, raw=b"{}")
    assert "`/` is not allowed in a topic key" in _problem(topic, 422, "validation-error")["detail"]
    # Not a path parameter: still the honest 404.
    other = _call(herald_server, "GET", "/v1/nothing%2Fhere", key=acme.secret_key)
    assert _problem(other, 404, "not-found")["detail"] == "No such endpoint"


def test_usage_range_rules_are_separate_errors(acme: Org, herald_server: HeraldServer) -> None:
    reversed_range = _call(herald_server, "GET", "/v1/usage?from=2026-02-01&to=2026-01-01", key=acme.secret_key)
    problem = _problem(reversed_range, 422, "validation-error")
    assert [(e["field"], e["msg"]) for e in problem["errors"]] == [("from", "must not be after `to`")]
    too_long = _call(herald_server, "GET", "/v1/usage?from=2024-01-01&to=2026-01-01", key=acme.secret_key)
    problem = _problem(too_long, 422, "validation-error")
    assert [(e["field"], e["msg"]) for e in problem["errors"]] == [("from", "must be at most 367 days before `to`")]
    bad_date = _call(herald_server, "GET", "/v1/usage?from=yesterday", key=acme.secret_key)
    assert _problem(bad_date, 422, "validation-error")["detail"] == "from: must be a date like 2026-01-31"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/subscribers?limt=5"), ("POST", "/v1/notifications?dry_run=1"), ("GET", "/v1/usage?form=2026-01-01")],
)
def test_unknown_query_parameters_are_422_like_unknown_body_fields(
    acme: Org, herald_server: HeraldServer, method: str, path: str
) -> None:
    raw = _json({"to": ["a"], "title": "x"}) if method == "POST" else None
    problem = _problem(_call(herald_server, method, path, key=acme.secret_key, raw=raw), 422, "validation-error")
    name = path.split("?")[1].split("=")[0]
    assert problem["errors"][0]["loc"] == ["query", name]
    assert problem["errors"][0]["msg"].startswith("is not a query parameter of this endpoint")
    with acme.activate():
        from notifications.models import Message

        assert not Message.objects.exists()


def test_widget_routes_still_take_the_publishable_key_as_a_query_parameter(acme: Org) -> None:
    headers = {"X-Herald-Subscriber": "ada", "X-Herald-Subscriber-Hash": subscriber_hash_for(acme, "ada")}
    api = Api(None, Origin=ALLOWED_ORIGIN, **headers)
    assert api.get(f"/v1/inbox/unread-count?pk={acme.publishable_key}").status_code == 200
    refused = api.get(f"/v1/inbox/unread-count?pk={acme.publishable_key}&sub=ada")
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "sub"


def test_validation_messages_are_written_for_people(acme: Org, herald_server: HeraldServer) -> None:
    problem = _send_both(
        acme,
        herald_server,
        _json({"to": [], "title": "", "colour": "red", "category": "a b", "data": [1], "action_url": "ftp://x"}),
    )
    messages = {error["field"]: error["msg"] for error in problem["errors"]}
    assert messages == {
        "to": "must have at least 1 item",
        "title": "must not be empty",
        "colour": "is not a field of this request (check its spelling)",
        "category": "may contain only letters, digits and `_` `.` `:` `-` (up to 100 characters)",
        "data": "must be a JSON object",
        "action_url": "action_url must be an http or https URL",
    }
