"""Idempotency-Key: claim a key, replay its first response, store that response, purge old records.

The records live in each organisation's schema (notifications.models.IdempotencyRecord): the same key
in two organisations is two keys. A key is claimed inside the transaction that does the work: a
concurrent request with the same key waits on the claim's row until that transaction ends, then
replays the stored response. A key older than IDEMPOTENCY_TTL_HOURS may be claimed again. The same key
with another request (another fingerprint) is refused with `idempotency-key-reused`; a request that
fails stores nothing, so a corrected retry may use its key.

Two callers: the send engine (notifications.sending), which claims and stores for a whole group of
sends in its own transaction with the statements below, and every other idempotent POST, which runs
in Django (`idempotent_call`, used by herald.operations.secret_operation).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone

from herald.errors import json_body
from herald.problems import Problem
from notifications.models import IdempotencyRecord

T_IDEMPOTENCY = IdempotencyRecord._meta.db_table
IDEMPOTENCY_TTL_HOURS = 24
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class IdempotencyClaim:
    """A request's claim on a key: where (endpoint), which key, and the fingerprint of what was asked."""

    endpoint: str
    key: str
    request_hash: str


def request_fingerprint(data: Any) -> str:
    """SHA-256 of a request body in canonical JSON: the same body in another key order is the same request."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def idempotency_key_valid(value: str) -> bool:
    return 0 < len(value) <= 255 and all(" " <= ch <= "~" for ch in value)


def idempotency_endpoint(path: str) -> str:
    """The endpoint a key belongs to: the request path (hashed when longer than the column)."""
    return path if len(path) <= 100 else hashlib.sha256(path.encode()).hexdigest()


def idempotency_claim_from_header(*, path: str, header: str | None, data: Any) -> IdempotencyClaim | None:
    """The claim of a request carrying `Idempotency-Key: header` (None without one); 400 for a bad key."""
    if header is None:
        return None
    if not idempotency_key_valid(header):
        raise Problem("invalid-idempotency-key")
    return IdempotencyClaim(endpoint=idempotency_endpoint(path), key=header, request_hash=request_fingerprint(data))


def idempotency_replay(claim: IdempotencyClaim, row: tuple[str, int, Any] | None) -> tuple[int, Any]:
    """The stored (status, body) a claim that was not granted replays: `row` is the key's (hash, status, body)."""
    if row is None or row[1] == 0:  # pragma: no cover - claims are committed with a response or rolled back
        raise Problem("idempotency-key-reused", "This Idempotency-Key is in use by a request that did not finish")
    if row[0] != claim.request_hash:
        raise Problem("idempotency-key-reused")
    body = json.loads(row[2]) if isinstance(row[2], str | bytes) else row[2]
    return int(row[1]), body


# --- the statements (the engine runs them schema-qualified, Django in the active schema) -------------

# Claim many keys at once, in key order (so concurrent claimers lock in one order): the keys granted come back.
CLAIMS_SQL = f"""
INSERT INTO {T_IDEMPOTENCY} AS r (key, endpoint, request_hash, status_code, response, created_at)
SELECT x.key, x.endpoint, x.request_hash, 0, 'null'::jsonb, now()
FROM json_to_recordset(%(claims)s::json) AS x(endpoint text, key text, request_hash text)
ORDER BY x.endpoint, x.key
ON CONFLICT (endpoint, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, status_code = 0, response = 'null'::jsonb, created_at = now()
    WHERE r.created_at < now() - interval '{IDEMPOTENCY_TTL_HOURS} hours'
RETURNING endpoint, key
"""

# What the keys of CLAIMS_SQL hold (read after it, in the same transaction).
CLAIMED_SQL = f"""
SELECT r.endpoint, r.key, r.request_hash, r.status_code, r.response FROM {T_IDEMPOTENCY} r
JOIN json_to_recordset(%(claims)s::json) AS x(endpoint text, key text) ON r.endpoint = x.endpoint AND r.key = x.key
"""

# Store the responses of granted claims ...
STORES_SQL = f"""
UPDATE {T_IDEMPOTENCY} r SET status_code = x.status_code, response = x.response
FROM json_to_recordset(%(stores)s::json) AS x(endpoint text, key text, status_code int, response jsonb)
WHERE r.endpoint = x.endpoint AND r.key = x.key
"""

# ... and drop those whose request failed (nothing was done: a corrected retry may use the key).
RELEASES_SQL = f"""
DELETE FROM {T_IDEMPOTENCY} r USING json_to_recordset(%(releases)s::json) AS x(endpoint text, key text)
WHERE r.endpoint = x.endpoint AND r.key = x.key
"""


def claims_json(claims: list[IdempotencyClaim]) -> str:
    return json.dumps([{"endpoint": c.endpoint, "key": c.key, "request_hash": c.request_hash} for c in claims])


# --- Django's idempotent POSTs ---------------------------------------------------------------------


def idempotency_claim(claim: IdempotencyClaim) -> tuple[int, Any] | None:
    """Claim a key in the active schema (None: granted), or the stored (status, body) of its first use."""
    params = {"claims": claims_json([claim])}
    with connection.cursor() as cursor:
        cursor.execute(CLAIMS_SQL, params)
        if cursor.fetchone() is not None:
            return None
        cursor.execute(CLAIMED_SQL, params)
        row = cursor.fetchone()
    return idempotency_replay(claim, (row[2], row[3], row[4]) if row else None)


def idempotency_store(claim: IdempotencyClaim, *, status_code: int, response: Any) -> None:
    """Record the response of a granted claim (same transaction as the claim)."""
    stores = [{"endpoint": claim.endpoint, "key": claim.key, "status_code": status_code, "response": response}]
    with connection.cursor() as cursor:
        cursor.execute(STORES_SQL, {"stores": json.dumps(stores)})


def idempotency_purge(*, older_than: timedelta) -> int:
    """Delete the active schema's idempotency records older than `older_than` (at least 24 h); how many."""
    if older_than < timedelta(hours=IDEMPOTENCY_TTL_HOURS):
        raise ValueError(f"idempotency keys are kept at least {IDEMPOTENCY_TTL_HOURS} h")
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {T_IDEMPOTENCY} WHERE created_at < %s", [timezone.now() - older_than])
        return int(cursor.rowcount)


def idempotent_call(request: HttpRequest, run: Callable[[], HttpResponseBase]) -> HttpResponseBase:
    """Run a POST once per Idempotency-Key: a repeat gets the stored first response, another body a 422."""
    header = request.headers.get(IDEMPOTENCY_HEADER, "")
    if not idempotency_key_valid(header):
        raise Problem("invalid-idempotency-key")
    claim = IdempotencyClaim(
        endpoint=idempotency_endpoint(request.path),
        key=header,
        request_hash=request_fingerprint(json_body(request) if request.body else None),
    )
    with transaction.atomic():
        stored = idempotency_claim(claim)
        if stored is not None:
            status, body = stored
            replay = HttpResponse(json.dumps(body), status=status, content_type="application/json")
            replay[REPLAYED_HEADER] = "true"
            return replay
        response = run()
        if 200 <= response.status_code < 300 and isinstance(response, HttpResponse):
            idempotency_store(claim, status_code=response.status_code, response=json.loads(response.content))
        else:
            transaction.set_rollback(True)
        return response
