"""The inbox WebSocket consumer: protocol v1 (docs/realtime-protocol.md).

Thin: the organisation comes from the publishable-key middleware
(notifications.routing), proofs from notifications.proofs, database work from
notifications.delivery (sync functions that activate their tenant themselves),
live fan-out from notifications.hub.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from herald.compat import sansio_handshake_forget, sansio_release
from herald.front import api_key_resolve_async
from notifications import delivery, receipts
from notifications.groups import organization_group, subscriber_group, topic_group
from notifications.hub import HubMember, hub, text_message
from notifications.presence import presence_watch
from notifications.proofs import subscriber_id_valid
from notifications.socket_limits import socket_limits
from tenants.models import Organization

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_TOO_BIG = 1009
CLOSE_MALFORMED = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_RATE_LIMITED = 4429

# The close frame's reason (at most 123 bytes): what a client developer reads in `event.reason`.
CLOSE_REASONS = {
    CLOSE_GOING_AWAY: "idle: no frame from the client for too long; send ping",
    CLOSE_UNSUPPORTED: "binary frames are not supported: send JSON text",
    CLOSE_TOO_BIG: "frame too big: at most 64 KiB",
    CLOSE_MALFORMED: 'malformed frame before auth: the first frame must be {"type": "auth", ...}',
    CLOSE_UNAUTHORIZED: "subscriber proof refused: check subscriber_hash or token against the signing secret",
    CLOSE_FORBIDDEN: "publishable key revoked or expired",
    CLOSE_AUTH_TIMEOUT: "no auth frame in time after connecting",
    CLOSE_RATE_LIMITED: "rate limited: too many frames on this connection",
}
REASON_PROOF_EXPIRED = "subscriber token expired: send auth with a fresh token before exp"
REASON_OTHER_SUBSCRIBER = "a later auth must name the same subscriber_id"
REASON_KEY_REVOKED = "publishable key revoked"
REASON_SUBSCRIBER_ERASED = "subscriber erased"
REASON_KEY_EXPIRED = "publishable key expired (it was rolled): use the new key"

PONG = text_message({"type": "pong"})
# Scope entries of notifications.routing: the client address, and whether the socket still counts as
# unauthenticated against it (notifications.socket_limits).
CLIENT = "herald.client"
PENDING = "herald.pending"
INBOX_ACTIONS = ("read", "unread", "archive")


T = TypeVar("T")


async def db_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`database_sync_to_async(fn)(...)` in a throwaway task.

    asgiref copies context-variable changes made in the sync thread back into
    the caller's context, and Django's caches are context-local: a socket that
    resolved a key through the cache would keep its own Redis cache client (and
    connection) for its whole life. A task runs in a copy of the context, which
    dies with it.
    """
    return await asyncio.ensure_future(database_sync_to_async(fn)(*args, **kwargs))


# Frames nest no deeper than this: a protocol frame is two levels deep, and json.loads recurses once per level
# (1,000 levels hit the interpreter's recursion limit).
FRAME_MAX_DEPTH = 32


def frame_parse(text: str) -> Any:
    """The JSON value of a client frame, or None when it is not JSON or nests too deep."""
    if text.count("[") + text.count("{") > FRAME_MAX_DEPTH and _nests_deeper(text, FRAME_MAX_DEPTH):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _nests_deeper(text: str, limit: int) -> bool:
    """Whether the JSON text opens more than `limit` brackets at once (brackets inside strings not counted)."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _error(code: str, message: str) -> dict[str, Any]:
    return text_message({"type": "error", "code": code, "message": message})


class InboxConsumer(HubMember, AsyncWebsocketConsumer):
    """One subscriber's socket. Joins only its own subscriber group, its topics and its organisation's group."""

    # No channel-layer channel per socket: the process's hub receives for all of them.
    channel_layer_alias = "herald.hub-only"
    # Thousands of these live per process: slots keep each instance's dict small.
    __slots__ = (
        "scope", "organization", "organization_id", "api_key_id", "channel_layer", "base_send", "loop", "closing",
        "authenticating", "subscriber_id", "topic_groups", "joined", "tokens", "tokens_at", "last_frame_at",
        "expiry_timer", "key_timer", "auth_timer", "idle_timer", "counted_subscriber",
    )  # fmt: skip

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # AsyncConsumer.__call__ without its channel-layer channel and without
        # await_many_dispatch's extra task per socket: with no channel of its own,
        # the client's `receive` is the only input, awaited directly.
        self.scope = scope
        self.organization: Organization = scope["organization"]
        self.organization_id = int(self.organization.pk)
        self.api_key_id = scope.get("api_key_id")
        self.send_queue_limit = int(settings.HERALD_WS_SEND_QUEUE)
        self.stall_seconds = float(settings.HERALD_WS_STALL_SECONDS)
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale DB connections before every handler; every
        # database_sync_to_async call already does that, so skip the extra thread hop.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is not None:
            await handler(message)

    # --- connection lifecycle ------------------------------------------------

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.closing = False
        self.authenticating = False
        self.subscriber_id: str | None = None
        self.topic_groups: set[str] = set()
        self.joined: set[str] = set()
        self.tokens = float(settings.HERALD_WS_BURST)
        self.tokens_at = time.monotonic()
        self.last_frame_at = loop.time()
        self.expiry_timer: asyncio.TimerHandle | None = None
        self.key_timer: asyncio.TimerHandle | None = None
        self.counted_subscriber: int | None = None
        await self.accept()
        sansio_handshake_forget(self.base_send)
        headers = self.scope.get("headers")
        if isinstance(headers, list):
            # Read by the middleware, needed by nobody after accept; ~1 KiB a socket.
            headers.clear()
        self.writer_bind()
        self.auth_timer: asyncio.TimerHandle | None = loop.call_later(
            float(settings.HERALD_WS_AUTH_TIMEOUT), self.close_socket, CLOSE_AUTH_TIMEOUT
        )
        self.idle_timer: asyncio.TimerHandle | None = loop.call_later(
            float(settings.HERALD_WS_IDLE_TIMEOUT), self._idle_check
        )
        key_expires_at = self.scope.get("api_key_expires_at")
        if key_expires_at is not None:  # a rolled key: its sockets close when its grace period ends
            self.key_expires(float(key_expires_at))

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self.closing = True
        self.writer_stop()
        for timer in (self.auth_timer, self.expiry_timer, self.key_timer, self.idle_timer):
            if timer is not None:
                timer.cancel()
        if self.counted_subscriber is not None:
            socket_limits.subscriber_leave(self.organization_id, self.counted_subscriber)
            self.counted_subscriber = None
        the_hub = hub()
        for group in list(self.joined):
            await the_hub.leave(group, self)
        self.joined.clear()
        sansio_release(self.base_send)  # frees the connection now, not at the next full collection (herald.compat)
        raise StopConsumer()

    def close_socket(self, code: int, reason: str | None = None) -> None:
        """Close with `code` and a short reason after the frames already queued."""
        if self.closing:
            return
        self.closing = True
        self.replay_buffer = None
        self.push({"type": "websocket.close", "code": code, "reason": reason or CLOSE_REASONS.get(code, "")})

    def _idle_check(self) -> None:
        idle = float(settings.HERALD_WS_IDLE_TIMEOUT)
        quiet = self.loop.time() - self.last_frame_at
        if quiet >= idle:
            self.idle_timer = None
            self.close_socket(CLOSE_GOING_AWAY)
        else:
            self.idle_timer = self.loop.call_later(idle - quiet, self._idle_check)

    def _rate_allows(self) -> bool:
        now = time.monotonic()
        rate, burst = float(settings.HERALD_WS_RATE), float(settings.HERALD_WS_BURST)
        self.tokens = min(burst, self.tokens + (now - self.tokens_at) * rate)
        self.tokens_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    # --- frames from the client ---------------------------------------------

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        if self.closing:
            return
        self.last_frame_at = self.loop.time()
        if not self._rate_allows():
            self.close_socket(CLOSE_RATE_LIMITED)
            return
        text = message.get("text")
        if text is None:
            self.close_socket(CLOSE_UNSUPPORTED)
            return
        limit = int(settings.HERALD_WS_MAX_FRAME)
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit):
            self.close_socket(CLOSE_TOO_BIG)
            return
        frame = frame_parse(text)
        kind = frame.get("type") if isinstance(frame, dict) else None
        if not isinstance(kind, str):
            self._refuse("bad_frame", "frames are JSON objects with a string `type`")
            return
        if kind == "ping":
            self.push(PONG)
        elif kind == "auth":
            await self._auth(frame)  # type: ignore[arg-type]
        elif self.subscriber_pk is None:
            self._refuse("not_authenticated", "send `auth` first")
        elif kind in INBOX_ACTIONS:
            await self._inbox_action(kind, frame)  # type: ignore[arg-type]
        elif kind == "read_all":
            # Every connection of the subscriber, this one included, hears it through its group.
            await db_call(delivery.inbox_read_all, organization=self.organization, subscriber_pk=self.subscriber_pk)
        else:
            self.push(_error("unknown_type", f"unknown frame type {kind[:40]!r}"))

    def _refuse(self, code: str, text: str) -> None:
        """A malformed frame: fatal before auth (4400), an `error` frame after."""
        if self.subscriber_pk is None:
            self.close_socket(CLOSE_MALFORMED)
        else:
            self.push(_error(code, text))

    async def _inbox_action(self, kind: str, frame: dict[str, Any]) -> None:
        assert self.subscriber_pk is not None
        message_id = frame.get("id")
        if not isinstance(message_id, str) or len(message_id) > 64 or not message_id.isascii():
            self.push(_error("bad_request", "`id` must be a notification id"))
            return
        found = await db_call(
            delivery.inbox_item_mark,
            organization=self.organization,
            subscriber_pk=self.subscriber_pk,
            message_id=message_id,
            action=kind,
        )
        if not found:
            self.push(_error("not_found", "no such notification in this inbox"))
        # A change reaches every connection of the subscriber, this one included, through its group.

    # --- auth, replay, stream -----------------------------------------------

    async def _auth(self, frame: dict[str, Any]) -> None:
        subscriber_id = frame.get("subscriber_id")
        proof_hash, token, cursor = frame.get("subscriber_hash"), frame.get("token"), frame.get("cursor")
        well_formed = (
            subscriber_id_valid(subscriber_id)
            and (proof_hash is None or isinstance(proof_hash, str))
            and (token is None or isinstance(token, str))
            and (cursor is None or (isinstance(cursor, int) and not isinstance(cursor, bool) and cursor >= 0))
        )
        if not well_formed or not isinstance(subscriber_id, str):
            self._refuse("bad_auth", "`auth` needs a subscriber_id (1-255 characters) and an integer or null cursor")
            return
        if self.authenticating:
            self.push(_error("busy", "`auth` already in progress"))
            return
        if self.subscriber_id is not None:
            await self._reauth(subscriber_id, proof_hash, token)
            return
        self.authenticating = True
        try:
            # On the event loop, not the shared database thread: one round trip (notifications.delivery).
            session = await delivery.subscriber_session_open_async(
                organization_id=self.organization_id,
                schema_name=self.organization.schema_name,
                subscriber_id=subscriber_id,
                subscriber_hash=proof_hash,
                token=token,
            )
            if self.closing:
                return
            if session is None:
                self.close_socket(CLOSE_UNAUTHORIZED)
                return
            if not socket_limits.subscriber_enter(
                self.organization_id, session.subscriber_pk, plan=self.organization.plan
            ):  # the subscriber, or its organisation (its plan's cap), has its cap of sockets in this process
                self.close_socket(CLOSE_RATE_LIMITED)
                return
            self.counted_subscriber = session.subscriber_pk
            if self.scope.get(PENDING):
                self.scope[PENDING] = False
                socket_limits.pending_leave(int(self.api_key_id or 0), str(self.scope.get(CLIENT, "")))
            if self.auth_timer is not None:
                self.auth_timer.cancel()
                self.auth_timer = None
            self.subscriber_id = subscriber_id
            self.subscriber_pk = session.subscriber_pk
            self.opted_out = session.opted_out
            self._expire_at(session.proof.expires_at)
            # Join first, buffering live frames, then read what was missed: nothing falls in between.
            self.replay_buffer = []
            self.topic_groups = {topic_group(self.organization_id, pk) for pk in session.topic_pks}
            groups = [subscriber_group(self.organization_id, session.subscriber_pk), *self.topic_groups]
            groups.append(organization_group(self.organization_id))
            the_hub = hub()
            for group in groups:
                self.joined.add(group)
                await the_hub.join(group, self)
            if cursor is None:
                # Nothing to replay: the session's figures stand. They were read before the joins, so the
                # ready cursor never passes a message this socket did not get live; a client without a
                # cursor loads its inbox over HTTP after `ready` (the widget does), which covers the joins.
                replay = delivery.Replay(latest_cursor=session.latest_cursor, unread_count=session.unread_count)
            else:
                replay = await delivery.missed_since_async(
                    organization_id=self.organization_id,
                    schema_name=self.organization.schema_name,
                    subscriber_pk=session.subscriber_pk,
                    cursor=cursor,
                )
            if self.closing:
                return
            self._replay_then_stream(replay, subscriber_id)
        finally:
            self.authenticating = False

    def _replay_then_stream(self, replay: delivery.Replay, subscriber_id: str) -> None:
        last_seq = -1
        if replay.reset_reason is not None:
            self.push(text_message({"type": "reset", "reason": replay.reset_reason, "cursor": replay.latest_cursor}))
        for item in replay.items:
            last_seq = item["seq"]
            self.push(text_message({"type": "notification", "notification": item, "cursor": item["seq"]}))
        receipts.replayed(self.organization_id, self.subscriber_pk, replay.items)  # type: ignore[arg-type]
        presence_watch()
        self.push(
            text_message(
                {
                    "type": "ready",
                    "v": PROTOCOL_VERSION,
                    "subscriber_id": subscriber_id,
                    "unread_count": replay.unread_count,
                    "cursor": max(replay.latest_cursor, last_seq),
                }
            )
        )
        self.replayed_seqs = frozenset(item["seq"] for item in replay.items)
        read_to = max(replay.latest_cursor, last_seq)
        self.cursor = max(self.cursor, read_to)
        buffered, self.replay_buffer = self.replay_buffer or [], None
        pushed: set[int] = set()
        for seq, message in buffered:
            if seq is None or seq > last_seq:
                self.push(message)
                if seq is not None:
                    pushed.add(seq)
        if hub().degraded or self.resync_wanted:
            # The channel layer is (or was, while this replay read the database) away: what was published since
            # the read may be lost. Catch up from the read, skipping only what this socket was really sent.
            self.outage_cursor, self.outage_seen = read_to, pushed
            if self.resync_wanted and not hub().degraded:
                self.resync()

    async def _reauth(self, subscriber_id: str, proof_hash: str | None, token: str | None) -> None:
        """A fresh proof for the same subscriber (a new token before `exp`); the key must still be live."""
        if subscriber_id != self.subscriber_id:
            self.close_socket(CLOSE_UNAUTHORIZED, REASON_OTHER_SUBSCRIBER)
            return
        self.authenticating = True
        try:
            key = await api_key_resolve_async(self.scope["publishable_key"])
            if key is None or key.organization_id != self.organization_id:
                self.close_socket(CLOSE_FORBIDDEN)
                return
            if key.expires_at is not None:
                self.key_expires(key.expires_at.timestamp())
            proof = await delivery.subscriber_proof_verify_async(
                organization_id=self.organization_id,
                subscriber_id=subscriber_id,
                subscriber_hash=proof_hash,
                token=token,
            )
            if proof is None:
                self.close_socket(CLOSE_UNAUTHORIZED)
                return
            self._expire_at(proof.expires_at)
        finally:
            self.authenticating = False

    def _expire_at(self, expires_at: Any) -> None:
        if self.expiry_timer is not None:
            self.expiry_timer.cancel()
            self.expiry_timer = None
        if expires_at is not None:
            delay = max(0.0, expires_at.timestamp() - time.time())
            self.expiry_timer = self.loop.call_later(delay, self.close_socket, CLOSE_UNAUTHORIZED, REASON_PROOF_EXPIRED)

    # --- hub callbacks ---------------------------------------------------------

    def resync(self) -> None:
        if self.closing or self.subscriber_pk is None:
            return  # not authenticated yet
        if self.replay_buffer is not None:
            # Replaying already: its database read may predate the outage's end; catch up once it is done.
            self.resync_wanted = True
            return
        self.resync_wanted = False
        # Taken now, not in the task: a live frame offered before the task runs is buffered (so it must not
        # count as sent) and is pushed from the buffer unless the catch-up has it.
        cursor, seen = self._outage_state()
        self.replay_buffer = []
        self.loop.create_task(self._resync(cursor, seen))

    def _outage_state(self) -> tuple[int, set[int]]:
        """Where the catch-up starts and what was offered since; the outage is over for this socket."""
        cursor = self.cursor if self.outage_cursor is None else self.outage_cursor
        seen = self.outage_seen or set()
        self.outage_cursor, self.outage_seen = None, None
        return cursor, seen

    async def _resync(self, cursor: int, seen: set[int]) -> None:
        """Catch up from `cursor` after a channel-layer outage: missed items first (but not those in `seen`, sent
        live since the outage began), then the live frames that arrived meanwhile, each once."""
        assert self.subscriber_pk is not None
        try:
            replay = await delivery.missed_since_async(
                organization_id=self.organization_id,
                schema_name=self.organization.schema_name,
                subscriber_pk=self.subscriber_pk,
                cursor=cursor,
            )
        except Exception:  # noqa: BLE001 - the database is away too: the client reconnects with its cursor
            logger.warning("catch-up after a channel-layer outage failed; closing the socket", exc_info=True)
            self.close_socket(CLOSE_GOING_AWAY)
            return
        if self.closing or self.replay_buffer is None:
            return
        if replay.reset_reason is not None:
            self.push(text_message({"type": "reset", "reason": replay.reset_reason, "cursor": replay.latest_cursor}))
        replayed = set()
        for item in replay.items:
            replayed.add(item["seq"])
            if item["seq"] not in seen:  # offered live after the layer came back, before the probe noticed
                self.push(text_message({"type": "notification", "notification": item, "cursor": item["seq"]}))
        self.replayed_seqs = frozenset(replayed)
        buffered, self.replay_buffer = self.replay_buffer, None
        for seq, message in buffered:
            if seq is None or seq not in replayed:
                self.push(message)
        if replayed or seen:
            # Everything up to here is sent: the cursor to resume from (live frames of the outage named its start).
            self.cursor = max(self.cursor, *replayed, *seen)
            frame = {"type": "unread_count", "count": replay.unread_count, "cursor": self.cursor}
            self.push(text_message(frame))

    def key_revoked(self) -> None:
        self.close_socket(CLOSE_FORBIDDEN, REASON_KEY_REVOKED)

    def subscriber_erased(self) -> None:
        self.close_socket(CLOSE_UNAUTHORIZED, REASON_SUBSCRIBER_ERASED)

    def key_expires(self, at: float) -> None:
        if self.closing:
            return
        if self.key_timer is not None:
            self.key_timer.cancel()
        self.key_timer = self.loop.call_later(
            max(0.0, at - time.time()), self.close_socket, CLOSE_FORBIDDEN, REASON_KEY_EXPIRED
        )

    def topic_change(self, topic: str, *, joined: bool) -> None:
        if self.closing:
            return
        if joined:
            self.topic_groups.add(topic)
            self.joined.add(topic)
            self.loop.create_task(self._join_late(topic))
        else:
            self.topic_groups.discard(topic)
            self.joined.discard(topic)
            self.loop.create_task(hub().leave(topic, self))

    async def _join_late(self, group: str) -> None:
        await hub().join(group, self)
        if self.closing or group not in self.joined:
            await hub().leave(group, self)
