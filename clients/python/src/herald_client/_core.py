"""The request-building core both clients share: what each call sends, how answers parse, when to retry.

No I/O happens here: `Herald` and `AsyncHerald` only carry out the `Call`s
built below, and ask `RetryPolicy` whether and when to try again.
"""

from __future__ import annotations

import email.utils
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast
from urllib.parse import quote

import httpx

from herald_client.errors import HeraldConnectionError, HeraldError

T = TypeVar("T")

VERSION = "0.1.0"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
USER_AGENT = f"herald-python/{VERSION}"
RETRY_STATUSES = frozenset({429, 503})


def segment(value: str) -> str:
    """One path segment, percent-encoded (subscriber ids may hold spaces, `@`, `:` and the like)."""
    return quote(value, safe="")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API operation: the request to send (the same on every attempt) and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    idempotency_key: str | None = None

    def headers(self, secret_key: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {secret_key}", "User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        return headers

    def request_kwargs(self, base_url: str, secret_key: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "method": self.method,
            "url": base_url.rstrip("/") + self.path,
            "headers": self.headers(secret_key),
        }
        if self.json is not None:
            kwargs["json"] = self.json
        if self.params:
            kwargs["params"] = {name: value for name, value in self.params.items() if value is not None}
        return kwargs

    def finish(self, response: httpx.Response) -> T:
        """The parsed answer, or HeraldError for a problem document (or any other non-2xx answer)."""
        if response.status_code >= 400:
            raise HeraldError.from_response(response)
        return self.parse(response)


def make_call(
    method: str,
    path: str,
    parse: Callable[[httpx.Response], T],
    *,
    json: Any = None,
    params: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Call[T]:
    """A Call; every POST gets an Idempotency-Key (the caller's, or a fresh one) that all its retries reuse."""
    if method == "POST" and idempotency_key is None:
        idempotency_key = str(uuid.uuid4())
    return Call(method, path, parse, json=json, params=params, idempotency_key=idempotency_key)


def parse_json(response: httpx.Response) -> Any:
    return response.json()


def parse_none(response: httpx.Response) -> None:
    return None


def as_type(_: type[T]) -> Callable[[httpx.Response], T]:
    """A parser that returns the JSON answer typed as the TypedDict `T` (no copy, no conversion)."""
    return cast(Callable[[httpx.Response], T], parse_json)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of 429/503 answers and connection errors: bounded in count and in each wait.

    The wait is the answer's `Retry-After` when it gives one, else exponential backoff with full jitter
    (`backoff * 2**attempt`, capped at `max_backoff`). A `Retry-After` over `max_retry_wait` is not waited
    for: the error is raised at once.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_wait: float = 30.0
    statuses: frozenset[int] = field(default=RETRY_STATUSES)
    jitter: Callable[[], float] = field(default=random.random, repr=False)  # noqa: S311 - not for secrets

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * (2.0**attempt)) * self.jitter()

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before the next attempt, or None to stop here (a success, or no retry left)."""
        if response.status_code not in self.statuses or attempt >= self.max_retries:
            return None
        told = retry_after_seconds(response.headers.get("Retry-After"))
        if told is None:
            return self._backoff(attempt)
        return told if told <= self.max_retry_wait else None

    def after_error(self, attempt: int, error: httpx.TransportError) -> float | None:
        """Seconds to wait after a connection error (the request may or may not have arrived), or None."""
        if attempt >= self.max_retries:
            return None
        return self._backoff(attempt)


def connection_error(call: Call[Any], error: httpx.TransportError, attempts: int) -> HeraldConnectionError:
    return HeraldConnectionError(f"{call.method} {call.path}: {type(error).__name__}: {error} (after {attempts} tries)")
