"""Subscriber proofs, signed by your backend with the organisation's signing secret.

The widget (and the widget API) accepts either proof:

- `subscriber_hash(secret, subscriber_id)`: hex HMAC-SHA256 of the UTF-8 subscriber id, or
- `subscriber_token(secret, subscriber_id, expires_in=...)`: an HS256 JWT with `sub` and `exp`.

Never send the signing secret (or a secret key) to a browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime


def subscriber_hash(signing_secret: str, subscriber_id: str) -> str:
    """hex(HMAC-SHA256(signing_secret, subscriber_id)), both UTF-8: the widget's `subscriber-hash`."""
    return hmac.new(signing_secret.encode(), subscriber_id.encode(), hashlib.sha256).hexdigest()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def subscriber_token(
    signing_secret: str,
    subscriber_id: str,
    *,
    expires_in: int | None = 3600,
    expires_at: datetime | None = None,
) -> str:
    """A short-lived HS256 JWT (`sub` = subscriber id, `exp`) for the widget's `tokenProvider`."""
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be an aware datetime")
        exp = int(expires_at.timestamp())
    elif expires_in is not None and expires_in > 0:
        exp = int(time.time()) + int(expires_in)
    else:
        raise ValueError("give expires_in (seconds, > 0) or expires_at")
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps({"sub": subscriber_id, "exp": exp}, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = _b64url(hmac.new(signing_secret.encode(), signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"
