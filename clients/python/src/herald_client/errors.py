"""Errors the client raises."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_BASE = "https://herald.dev/problems/"


class HeraldConnectionError(Exception):
    """Herald could not be reached (or the answer was lost) on every attempt."""


class HeraldError(Exception):
    """Herald answered with a problem document (RFC 9457); branch on `type`, e.g. `rate-limited`."""

    def __init__(
        self,
        *,
        status: int,
        type: str,  # noqa: A002 - the problem document's member
        title: str,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        retry_after: str | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {type}: {detail or title}")
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.retry_after = retry_after
        self.problem = problem or {}

    @classmethod
    def from_response(cls, response: httpx.Response) -> HeraldError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        kind = str(body.get("type") or "")
        return cls(
            status=response.status_code,
            type=kind.removeprefix(PROBLEM_BASE) or f"http-{response.status_code}",
            title=str(body.get("title") or response.reason_phrase),
            detail=str(body.get("detail") or ""),
            errors=body.get("errors") if isinstance(body.get("errors"), list) else None,
            retry_after=response.headers.get("Retry-After"),
            problem=body,
        )
