"""Every reach into a library's private parts, in one place.

Each function here relies on something a library does not promise (a private
attribute, an undocumented format, a class it does not export). The versions
are pinned in pyproject.toml and constraints.txt, and tests/herald/test_compat.py
checks each reach against the installed library, so an upgrade that breaks one
fails there, by name, rather than somewhere downstream. Apps may import this
module; nothing else in Herald touches these internals.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

# --- uvicorn 0.54: the websockets-sansio protocol behind a socket's ASGI `send` -------------------------------


def sansio_protocol(send: Any) -> Any | None:
    """uvicorn's WebSocketsSansIOProtocol whose bound method `send` is, or None under any other server.

    Relies on `send` being the protocol's own `asgi_send` and on its `transport`, `writable` (an asyncio.Event
    that is set while the transport takes writes) and `close_sent` attributes.
    """
    protocol = getattr(send, "__self__", None)
    if type(protocol).__name__ != "WebSocketsSansIOProtocol":
        return None
    if not all(hasattr(protocol, name) for name in ("transport", "writable", "close_sent")):
        return None
    return protocol


def sansio_write(protocol: Any, wire: bytes) -> Literal["written", "closed", "busy"]:
    """Write a serialized frame straight to the protocol's transport: `busy` when it pushes back (send it
    through the ASGI `send` instead), `closed` when the socket is closing."""
    if not protocol.writable.is_set():
        return "busy"
    if protocol.close_sent or protocol.transport.is_closing():
        return "closed"
    protocol.transport.write(wire)
    return "written"


def sansio_handshake_forget(send: Any) -> None:
    """Free the handshake's request and response the protocol keeps for the socket's life (~2-3 KiB a socket).

    Relies on its `handshake_complete`, `request` and `response` attributes; websockets' parser generator keeps
    the request alive too, so its headers are emptied.
    """
    protocol: Any = getattr(send, "__self__", None)
    if type(protocol).__name__ != "WebSocketsSansIOProtocol" or not getattr(protocol, "handshake_complete", False):
        return
    request = getattr(protocol, "request", None)
    if request is not None:
        request.headers.clear()
    protocol.request = None
    protocol.response = None


def sansio_release(send: Any) -> bool:
    """Once the socket is closed, end websockets' parser generator so the connection is freed by refcount.

    The websockets protocol's `parser` generator holds the protocol in a reference cycle, and it never ends:
    `discard()` waits at a last `yield` even after EOF, and uvicorn never feeds EOF. Each closed socket then
    waited for a full garbage collection with its permessage-deflate zlib state (~40 KiB); with the ASGI
    process's gc thresholds (herald.asgi) hundreds of them piled up (issue #13, the connect-cycle test).
    Closing the generator only once the transport is closing: no data_received reaches the parser after that.
    Relies on uvicorn's `conn` and `transport` and websockets' `parser`; False when there was nothing to end.
    """
    protocol: Any = getattr(send, "__self__", None)
    if type(protocol).__name__ != "WebSocketsSansIOProtocol":
        return False
    transport, conn = getattr(protocol, "transport", None), getattr(protocol, "conn", None)
    parser = getattr(conn, "parser", None)
    if transport is None or not transport.is_closing() or not inspect.isgenerator(parser):
        return False
    parser.close()
    return True


def asgi_transport_abort(send: Any) -> bool:
    """Drop the connection behind an ASGI `send` at once (no closing handshake); False when it cannot be found.

    Relies on uvicorn's protocols (both WebSocket implementations) exposing their asyncio `transport`.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    transport.abort()
    return True


# --- asyncio: driving a coroutine step by step -------------------------------------------------------------------


def future_unblock(future: Any) -> None:
    """Clear the flag a coroutine sets on a future it yields, as asyncio.Task does before it waits on it.

    A send driven one step by hand (`coro.send(None)`) leaves the yielded future marked blocking; awaiting it
    again from another coroutine would raise RuntimeError. Relies on asyncio's `_asyncio_future_blocking`.
    """
    future._asyncio_future_blocking = False


# --- asgiref: is this the thread sync_to_async runs for a loop? ---------------------------------------------------


def asgiref_runs_for_a_loop() -> bool:
    """True in a thread that `sync_to_async` runs for a live event loop of this process (async_to_sync reuses it).

    Relies on asgiref's `SyncToAsync.threadlocal.main_event_loop` / `main_event_loop_pid`.
    """
    import os

    from asgiref.sync import SyncToAsync

    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    pid = getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None)
    return loop is not None and pid == os.getpid() and loop.is_running()


# --- channels-redis 4.3: one pipelined PUBLISH round trip per shard ----------------------------------------------


async def pubsub_publish_pipelined(layer: Any, pairs: list[tuple[str, dict[str, Any]]]) -> bool:
    """Publish (group, event) pairs on a RedisPubSubChannelLayer with one pipeline per shard; False (nothing sent)
    when `layer` is not one whose internals this knows, so the caller sends them one `group_send` at a time.

    Each event is sent as `group_send(group, event)` would send it. Relies on the layer's `_get_layer()` (the
    per-loop layer) and its `_shards`, `_get_group_channel_name`, `_get_shard`, `serialize`, and on each shard's
    `_lock`, `_ensure_redis()` and `_redis`. A shard whose pipeline fails is logged, not raised: the database
    holds every message and clients catch up by cursor.
    """
    from channels_redis.pubsub import RedisPubSubChannelLayer

    if not isinstance(layer, RedisPubSubChannelLayer):
        return False
    try:
        loop_layer = layer._get_layer()
    except Exception:  # noqa: BLE001 - the caller falls back to group_send
        return False
    shards = getattr(loop_layer, "_shards", None)
    if not shards or not all(hasattr(shard, "_lock") for shard in shards):
        return False
    by_shard: dict[int, list[tuple[str, bytes]]] = {}
    for group, event in pairs:
        channel = loop_layer._get_group_channel_name(group)
        shard = loop_layer._get_shard(channel)
        by_shard.setdefault(id(shard), []).append((channel, layer.serialize(event)))
    by_id = {id(shard): shard for shard in shards}
    for shard_id, messages in by_shard.items():
        shard = by_id[shard_id]
        try:
            async with shard._lock:
                shard._ensure_redis()
                pipeline = shard._redis.pipeline(transaction=False)
                for channel, payload in messages:
                    pipeline.publish(channel, payload)
                await pipeline.execute()
        except Exception:  # noqa: BLE001 - the database already holds it; clients catch up by cursor
            logger.warning("pipelined publish of %d events failed", len(messages), exc_info=True)
            from herald import metrics

            metrics.channel_layer_publish_failures.inc(len(messages))
    return True


# --- Django 5.2's Redis cache, with django-tenants' key function ------------------------------------------------


def tenant_cache_key(key: str, *, schema_name: str, version: int = 1, key_prefix: str = "") -> str:
    """The Redis key under which Django's cache (KEY_FUNCTION django_tenants.cache.make_key) stores `key`
    for `schema_name`, for code that reads the cache's Redis directly without a database connection."""
    return f"{schema_name}:{key_prefix}:{version}:{key}"


def cache_value_decode(raw: bytes) -> Any:
    """A value as Django's Redis cache stored it (plain integers as digits, anything else pickled).

    Relies on django.core.cache.backends.redis.RedisSerializer, which Django does not document.
    """
    from django.core.cache.backends.redis import RedisSerializer

    return RedisSerializer().loads(raw)


# --- Django 5.2's BaseHandler: one async middleware as a handler's whole chain ------------------------------------


def django_handler_chain_install(handler: Any, middleware: Callable[[Any], Any]) -> None:
    """Make `middleware(get_response)` the whole middleware chain of a Django handler (instead of MIDDLEWARE).

    What BaseHandler.load_middleware leaves behind, for an async chain: the `_view_middleware`,
    `_template_response_middleware` and `_exception_middleware` lists, and `_middleware_chain` around
    `_get_response_async`, each wrapped by convert_exception_to_response as Django wraps its own.
    """
    from django.core.handlers.exception import convert_exception_to_response

    handler._view_middleware = []
    handler._template_response_middleware = []
    handler._exception_middleware = []
    inner = convert_exception_to_response(handler._get_response_async)
    handler._middleware_chain = convert_exception_to_response(middleware(inner))


# --- django-ninja: the answer to a method a path does not serve ---------------------------------------------------


def ninja_method_not_allowed_install(handler: Any) -> None:
    """Make every route answer a method it does not serve with `handler(view)` (django-ninja's answer is HTML).

    django-ninja clones each router's PathView when it binds the router to an API, so the method is replaced on
    the class. Relies on PathView._not_allowed(self) being what a PathView calls for such a method.
    """
    from ninja.operation import PathView

    PathView._not_allowed = handler  # type: ignore[method-assign]


# --- pgserver 0.1.4: the bundled PostgreSQL's binaries ------------------------------------------------------------


def pgserver_bin_dir() -> Path | None:
    """The folder of pgserver's bundled PostgreSQL programs (pg_dump among them), or None without pgserver.

    Relies on pgserver._commands.POSTGRES_BIN_PATH.
    """
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:  # pragma: no cover - pgserver is a dependency
        return None
    return Path(POSTGRES_BIN_PATH)


__all__ = [
    "asgi_transport_abort",
    "asgiref_runs_for_a_loop",
    "cache_value_decode",
    "django_handler_chain_install",
    "future_unblock",
    "ninja_method_not_allowed_install",
    "pgserver_bin_dir",
    "pubsub_publish_pipelined",
    "sansio_handshake_forget",
    "sansio_protocol",
    "sansio_write",
    "tenant_cache_key",
]
