"""Web origins as publishable keys' allow-lists hold them: scheme://host[:port]."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError


def origin_normalize(origin: str) -> str:
    """`https://App.Example.com:443/` -> `https://app.example.com`; refuse anything but an origin."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{origin!r} is not an http(s) origin", code="invalid_origin")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationError(f"{origin!r} must be an origin only: scheme://host[:port]", code="invalid_origin")
    try:
        port = parts.port
    except ValueError:
        raise ValidationError(f"{origin!r} has an invalid port", code="invalid_origin") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """Exact match of a request's Origin against an allow-list."""
    if not origin:
        return False
    try:
        return origin_normalize(origin) in allowed
    except ValidationError:
        return False
