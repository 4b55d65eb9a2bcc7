"""herald-client's shared core without a server: what a call sends, and when it is retried."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from herald_client import RetryPolicy
from herald_client import _operations as ops
from herald_client._core import retry_after_seconds


def _answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (retry_after_seconds(later) or 0) <= 30
    assert retry_after_seconds(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None


def test_only_429_503_and_connection_errors_are_retried_and_never_past_max_retries() -> None:
    policy = RetryPolicy(max_retries=2, backoff=1.0, max_backoff=3.0, jitter=lambda: 1.0)
    assert policy.after_response(0, _answer(429, **{"Retry-After": "2"})) == 2.0
    assert policy.after_response(0, _answer(503)) == 1.0
    assert policy.after_response(1, _answer(503)) == 2.0
    assert policy.after_response(2, _answer(503)) is None  # the third failure is the last
    for status in (200, 202, 400, 401, 404, 422, 500, 502):
        assert policy.after_response(0, _answer(status)) is None, status
    assert policy.after_response(0, _answer(429, **{"Retry-After": "31"})) is None  # over max_retry_wait
    assert policy.after_error(0, httpx.ConnectError("refused")) == 1.0
    assert RetryPolicy(max_backoff=3.0, backoff=1.0, jitter=lambda: 1.0).after_error(2, httpx.ReadError("x")) == 3.0
    assert policy.after_error(2, httpx.ReadError("x")) is None


def test_each_post_gets_its_own_idempotency_key_and_other_methods_none() -> None:
    first = ops.send(ops.notification(to=["a"], title="x"), None)
    second = ops.send(ops.notification(to=["a"], title="x"), None)
    assert first.idempotency_key and second.idempotency_key and first.idempotency_key != second.idempotency_key
    assert first.headers("sk")["Idempotency-Key"] == first.idempotency_key
    assert ops.send(ops.notification(to=["a"], title="x"), "mine").headers("sk")["Idempotency-Key"] == "mine"
    assert "Idempotency-Key" not in ops.subscriber_upsert("a", {}).headers("sk")
    assert "Idempotency-Key" not in ops.topic_delete("t").headers("sk")


def test_ids_are_one_path_segment_each() -> None:
    call = ops.inbox_mark("team a/b?c#d", "m-1", "read", None)
    assert call.path == "/v1/subscribers/team%20a%2Fb%3Fc%23d/notifications/m-1/read"
    assert ops.notification(title="x", to=["a"]) == {"to": ["a"], "title": "x"}  # unset fields are left out
    with pytest.raises(ValueError):
        ops.inbox_mark("a", "m", "delete", None)  # type: ignore[arg-type]
