"""RFC 9457 problem details: every API error has a stable `type` URI.

    {"type": "https://herald.dev/problems/<slug>", "title": ..., "status": ..., "detail": ...}

served as `application/problem+json`. The slugs below are the contract:
clients branch on `type`, never on `title` or `detail`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse

PROBLEM_BASE = "https://herald.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug


PROBLEM_TYPES: dict[str, ProblemType] = {
    p.slug: p
    for p in (
        ProblemType("invalid-json", 400, "Malformed JSON", "The request body is not valid JSON."),
        ProblemType("invalid-cursor", 400, "Invalid cursor", "The `cursor` was not issued by this list."),
        ProblemType("invalid-idempotency-key", 400, "Invalid Idempotency-Key", "1-255 printable ASCII characters."),
        ProblemType(
            "authentication-required", 401, "Authentication required", "No API key was given (Authorization: Bearer)."
        ),
        ProblemType("invalid-api-key", 401, "Invalid API key", "The key is malformed, unknown, revoked or expired."),
        ProblemType(
            "publishable-key-not-allowed",
            401,
            "Publishable key used on a secret-key endpoint",
            "This endpoint needs a secret key (sk_live_...); publishable keys only open the widget API.",
        ),
        ProblemType(
            "secret-key-not-allowed",
            401,
            "Secret key used on a widget endpoint",
            "Widget endpoints take a publishable key (pk_live_...); never ship a secret key to a browser.",
        ),
        ProblemType(
            "invalid-subscriber-proof",
            401,
            "Subscriber proof refused",
            "X-Herald-Subscriber-Hash or the subscriber token is missing, forged, expired or for another subscriber.",
        ),
        ProblemType(
            "origin-not-allowed", 403, "Origin not allowed", "The Origin is not on the publishable key's allow-list."
        ),
        ProblemType("not-found", 404, "Not found", "No such resource in this organisation."),
        ProblemType("method-not-allowed", 405, "Method not allowed", "The resource does not answer this method."),
        ProblemType("payload-too-large", 413, "Payload too large", "Request bodies are limited to 256 KiB."),
        ProblemType(
            "validation-error", 422, "Validation failed", "The request does not match the schema; see `errors`."
        ),
        ProblemType(
            "idempotency-key-reused",
            422,
            "Idempotency-Key reused with another body",
            "This Idempotency-Key was first used with a different request body.",
        ),
        ProblemType(
            "rate-limited", 429, "Rate limit exceeded", "Too many requests for this key; retry after `Retry-After`."
        ),
        ProblemType(
            "quota-exceeded",
            429,
            "Quota exceeded",
            "The plan's monthly notifications are used up; `limit` names the quota and `resets_at` when it starts"
            " again (upgrade the plan to send before then).",
        ),
        ProblemType(
            "bad-request", 400, "Bad request", "The request could not be served as sent (for example its Host)."
        ),
        ProblemType(
            "invalid-webhook-signature",
            400,
            "Webhook signature refused",
            "The Stripe-Signature header is missing, does not match the body, or is older than 5 minutes.",
        ),
        ProblemType(
            "webhook-event-refused",
            400,
            "Webhook event refused",
            "This endpoint takes only the Stripe event types Herald handles, sent with Herald's API version.",
        ),
        ProblemType(
            "billing-not-configured",
            503,
            "Billing is not configured",
            "This Herald has no Stripe keys (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET); nothing was done.",
        ),
        ProblemType("internal-error", 500, "Internal error", "Something failed on Herald's side; it was logged."),
        ProblemType(
            "service-unavailable",
            503,
            "Service unavailable",
            "Herald could not reach its database; nothing was written. Retry after `Retry-After`.",
        ),
    )
}


class Problem(Exception):  # noqa: N818 - it is the RFC's name
    """Raise to answer with a problem document."""

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.problem_type = PROBLEM_TYPES[slug]
        self.detail = detail or self.problem_type.description
        self.headers = headers or {}
        self.extra = extra
        super().__init__(f"{slug}: {self.detail}")

    @property
    def status(self) -> int:
        return self.problem_type.status

    def response(self, instance: str | None = None) -> HttpResponse:
        return problem_response(
            self.problem_type.slug, self.detail, instance=instance, headers=self.headers, **self.extra
        )

    def document(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document itself (what `response` sends), for code that answers without Django."""
        return problem_document(self.problem_type.slug, self.detail, instance=instance, **self.extra)


def problem_document(
    slug: str, detail: str | None = None, *, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The RFC 9457 document for the problem `slug`."""
    kind = PROBLEM_TYPES[slug]
    body: dict[str, Any] = {
        "type": kind.uri,
        "title": kind.title,
        "status": kind.status,
        "detail": detail or kind.description,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_response(
    slug: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> HttpResponse:
    """An `application/problem+json` response for the problem `slug`."""
    body = problem_document(slug, detail, instance=instance, **extra)
    response = HttpResponse(json.dumps(body), status=body["status"], content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def problem_types_markdown() -> str:
    """The table of problem types, for the OpenAPI description."""
    lines = ["| type | status | meaning |", "|---|---|---|"]
    for kind in PROBLEM_TYPES.values():
        lines.append(f"| `{kind.uri}` | {kind.status} | {kind.description} |")
    return "\n".join(lines)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: every unhandled error is a problem document, never Django's HTML page."""
    return problem_response("internal-error", instance=request.path)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: a request Django refuses (a Host it does not serve, a suspicious operation) as a problem."""
    return problem_response("bad-request", instance=request.path)
