"""The format of API keys: `sk_live_` / `pk_live_`, 128+ random bits, a checksum.

    sk_live_<22 base62 random chars><6 base62 checksum chars>

22 base62 characters carry 130 bits. The checksum (CRC32 of everything before
it) lets a typo or a pasted fragment be refused without touching the database.
Only the SHA-256 of the whole key and a short visible prefix are stored.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from typing import Literal

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 22
CHECKSUM_LENGTH = 6
PREFIXES = {"secret": "sk_live_", "publishable": "pk_live_"}
KEY_LENGTH = len("sk_live_") + RANDOM_LENGTH + CHECKSUM_LENGTH
VISIBLE_LENGTH = len("sk_live_") + 6

KeyKind = Literal["secret", "publishable"]


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        chars.append(ALPHABET[rest])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def key_generate(kind: KeyKind) -> str:
    """A new random key of `kind`."""
    body = PREFIXES[kind] + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return body + _checksum(body)


def key_kind(key: str) -> KeyKind | None:
    """The kind of a well-formed key with a valid checksum, else None."""
    if len(key) != KEY_LENGTH:
        return None
    for kind, prefix in PREFIXES.items():
        if key.startswith(prefix):
            body, checksum = key[:-CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
            if not all(c in ALPHABET for c in key[len(prefix) :]):
                return None
            if not secrets.compare_digest(_checksum(body), checksum):
                return None
            return kind  # type: ignore[return-value]
    return None


def key_hash(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    """The short visible part shown in listings (`sk_live_AbC123`)."""
    return key[:VISIBLE_LENGTH]
