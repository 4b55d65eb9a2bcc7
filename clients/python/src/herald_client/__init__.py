"""Herald's Python client: `Herald` (sync) and `AsyncHerald` (async) for the server API, and proof helpers."""

from herald_client._core import RetryPolicy
from herald_client._operations import notification
from herald_client.client import AsyncHerald, Herald
from herald_client.errors import HeraldConnectionError, HeraldError
from herald_client.proofs import subscriber_hash, subscriber_token

__all__ = [
    "AsyncHerald",
    "Herald",
    "HeraldConnectionError",
    "HeraldError",
    "RetryPolicy",
    "notification",
    "subscriber_hash",
    "subscriber_token",
]
__version__ = "0.1.0"
