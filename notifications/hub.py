"""The process-local hub between the channel layer and this process's sockets.

Herald keeps every public Channels piece: one consumer per socket,
tenant-namespaced groups (notifications.groups), `group_send` on the channel
layer. What it changes is the work per socket per message (docs/architecture.md,
"the hub"): instead of one channel-layer channel, one subscription and one
decode per socket, each process holds ONE channel and joins each group once,
however many of its sockets belong to it. An event is decoded once, its frame
is built once, and the same ASGI message is written to every local member.

Writes never await a slow socket: each frame is sent one step synchronously;
a socket whose transport pushes back gets its own bounded queue and drain
task, and one that overflows it is dropped (its client reconnects with its
cursor and loses nothing). So one stalled socket cannot stall its tenant.

Events consumed (see notifications.realtime for their full shapes):
`notification.new`, `notification.batch`, `key.revoked`, `key.expiring`, `inbox.update`, `preferences.changed`,
`topic.membership`, `subscriber.erased`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer
from websockets.frames import Frame, Opcode

from herald import metrics
from herald.compat import asgi_transport_abort, future_unblock, sansio_protocol, sansio_write
from notifications import receipts
from notifications.groups import group_tenant, subscriber_group, topic_group

logger = logging.getLogger(__name__)

ASGIMessage = dict[str, Any]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def text_message(frame: dict[str, Any]) -> ASGIMessage:
    """An ASGI `websocket.send` for `frame`."""
    return {"type": "websocket.send", "text": dumps(frame)}


def shared_text_message(frame: dict[str, Any]) -> ASGIMessage:
    """An ASGI `websocket.send` for `frame` that also carries the frame serialized once, for every socket.

    Server frames are unmasked, so the bytes on the wire are the same for every
    socket; sockets served by uvicorn's websockets-sansio protocol get them
    written straight to their transport (see SocketWriter.push). Uncompressed
    even where permessage-deflate was negotiated, which RFC 7692 allows.
    """
    text = dumps(frame)
    wire = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
    return {"type": "websocket.send", "text": text, WIRE: wire}


def _with_cursor(message: ASGIMessage, cursor: int) -> ASGIMessage:
    """`message` (a frame with a `cursor`) with another cursor, serialized for this socket alone."""
    frame = json.loads(message["text"])
    frame["cursor"] = cursor
    return text_message(frame)


# A socket whose queue reaches this many times its limit is dropped even while it still moves.
QUEUE_HARD_FACTOR = 4

# The pre-serialized frame rides in the ASGI message under a key no server reads.
WIRE = "herald.wire"


class SocketWriter:
    """Ordered, non-blocking writes to one socket through its ASGI `send`.

    `push` never awaits: when the transport accepts the frame at once (the
    common case) it is written on the spot; otherwise it joins this socket's
    own queue, drained by a task of its own, capped at `send_queue_limit`.
    """

    base_send: Callable[[ASGIMessage], Awaitable[None]]
    send_queue_limit: int = 1000
    # Over send_queue_limit a socket is dropped only when it also made no progress for this long, or when its
    # queue reaches QUEUE_HARD_FACTOR times the limit: a reader briefly behind during a burst is not cut off.
    stall_seconds: float = 2.0
    _progress_at: float = 0.0
    _pending: deque[ASGIMessage] | None = None
    _drain_task: asyncio.Task[None] | None = None
    _dead: bool = False

    # uvicorn's websockets-sansio protocol of this socket, when that is the server (writer_bind).
    _protocol: Any = None

    def writer_bind(self) -> None:
        """Once accepted: find the transport pre-serialized frames can be written to directly.

        Relies on uvicorn 0.54's WebSocketsSansIOProtocol (`transport`, `writable`,
        `close_sent`): pinned in pyproject and exercised by every end-to-end test.
        Under any other server every frame goes through the ASGI `send`.
        """
        self._protocol = sansio_protocol(self.base_send)

    def push(self, message: ASGIMessage) -> None:
        """Send `message` after everything pushed before it, without waiting."""
        if self._dead:
            return
        if self._pending is not None:
            if len(self._pending) >= self.send_queue_limit and self._stalled():
                self.socket_overflow()
                return
            self._pending.append(message)
            return
        protocol = self._protocol
        if protocol is not None:
            wire = message.get(WIRE)
            if wire is not None:
                written = sansio_write(protocol, wire)
                if written == "closed":
                    self._dead = True
                if written != "busy":
                    return
        step = self.base_send(message)
        try:
            waiting_on = step.send(None)  # type: ignore[attr-defined]
        except StopIteration:
            return
        except Exception:  # noqa: BLE001 - the client is gone; its disconnect event follows
            self._dead = True
            return
        self._pending = deque()
        loop = asyncio.get_running_loop()
        self._progress_at = loop.time()
        self._drain_task = loop.create_task(self._drain(step, waiting_on))

    def _stalled(self) -> bool:
        """Over its queue limit: drop it? Only if it has not moved for stall_seconds, or is far over."""
        assert self._pending is not None
        if len(self._pending) >= self.send_queue_limit * QUEUE_HARD_FACTOR:
            return True
        return asyncio.get_running_loop().time() - self._progress_at >= self.stall_seconds

    async def _drain(self, step: Any, waiting_on: Any) -> None:
        try:
            # Finish the send that could not complete synchronously, then the queue.
            while True:
                if waiting_on is None:
                    await asyncio.sleep(0)
                else:
                    # What a Task does with a yielded future: the send coroutine marked it
                    # "blocking"; awaiting it again here would otherwise raise RuntimeError.
                    future_unblock(waiting_on)
                    await waiting_on
                try:
                    waiting_on = step.send(None)
                except StopIteration:
                    break
            loop = asyncio.get_running_loop()
            self._progress_at = loop.time()
            while self._pending:
                await self.base_send(self._pending.popleft())
                self._progress_at = loop.time()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            self._dead = True
        finally:
            self._pending = None
            self._drain_task = None

    def socket_overflow(self) -> None:
        """The client cannot keep up: drop it; it reconnects with its cursor."""
        logger.info("dropping a socket that cannot keep up (%s frames waiting)", self.send_queue_limit)
        self._dead = True
        self._pending = None
        if self._drain_task is not None:
            self._drain_task.cancel()
        asgi_transport_abort(self.base_send)

    def writer_stop(self) -> None:
        self._dead = True
        if self._drain_task is not None and self._drain_task is not asyncio.current_task():
            self._drain_task.cancel()


class HubMember(SocketWriter):
    """What the hub needs from a socket: its tenant, its subscriber and how to take frames."""

    organization_id: int
    api_key_id: int | None = None  # the publishable key the socket was opened with
    subscriber_pk: int | None = None
    opted_out: frozenset[str] = frozenset()
    # While the missed items are replayed, live frames wait here (seq, message).
    replay_buffer: list[tuple[int | None, ASGIMessage]] | None = None
    # The highest message seq offered to this socket.
    cursor: int = -1
    # Set while the channel layer is (or was, until the catch-up) away: the cursor when the outage began, where
    # the catch-up starts, and the seqs offered since, which the catch-up must not repeat.
    outage_cursor: int | None = None
    outage_seen: set[int] | None = None
    # A catch-up asked for while a replay was in progress: done when that replay ends.
    resync_wanted: bool = False
    # The seqs the last replay or catch-up sent from the database: a live frame of one of them that arrives
    # after it (committed before the read, published after) is not shown twice.
    replayed_seqs: frozenset[int] = frozenset()

    def outage_begins(self) -> None:
        """The channel layer went away: remember where this socket stood."""
        if self.outage_cursor is None:
            self.outage_cursor = self.cursor
            self.outage_seen = set()

    def offer(self, message: ASGIMessage, seq: int | None = None) -> None:
        if seq is not None and seq in self.replayed_seqs:
            return
        if seq is not None:
            if seq > self.cursor:
                self.cursor = seq
            if self.outage_seen is not None:
                self.outage_seen.add(seq)
            if self.outage_cursor is not None:
                # Older items may be missing until the catch-up: a client that reconnects from this frame's
                # cursor must get them, so it names where the outage began, not this item's seq.
                message = _with_cursor(message, self.outage_cursor)
        if self.replay_buffer is not None:
            if len(self.replay_buffer) >= self.send_queue_limit:
                self.socket_overflow()
                return
            self.replay_buffer.append((seq, message))
            return
        self.push(message)

    def topic_change(self, topic: str, *, joined: bool) -> None:
        """The subscriber joined or left a topic while connected (overridden by the consumer)."""

    def key_revoked(self) -> None:
        """The publishable key this socket was opened with was revoked (overridden by the consumer)."""

    def key_expires(self, at: float) -> None:
        """That key was rolled: it stops working at `at` (Unix time; overridden by the consumer)."""

    def subscriber_erased(self) -> None:
        """The subscriber of this socket was erased (overridden by the consumer)."""

    def resync(self) -> None:
        """The channel layer was away: catch up from `cursor` (overridden by the consumer)."""

    def offer_notification(self, message: ASGIMessage, seq: int, category: str | None) -> None:
        """A new message; `category` is given for topic/broadcast messages, which honour opt-outs here."""
        if category is not None and category in self.opted_out:
            return
        self.offer(message, seq)


class Hub:
    """One per event loop: joins each group once and fans events out to local members."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel_name: str | None = None
        self.groups: dict[str, set[HubMember]] = {}
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self.received = 0
        # Channel-layer health: a probe published to this process's own group every PROBE_SECONDS must come
        # back. While it does not, the hub is `degraded`; when it does again, every member catches up by cursor,
        # because pub/sub drops what was published meanwhile.
        self.probe_group = f"herald.probe.{uuid.uuid4().hex}"
        self.degraded = False
        self.resyncs = 0
        self._probe_seen = 0
        self._unsubscribed: set[str] = set()
        self._probe_task: asyncio.Task[None] | None = None

    async def _ensure_started(self) -> str:
        if self.channel_name is not None:
            return self.channel_name
        async with self._start_lock:
            if self.channel_name is None:
                name = await self.layer.new_channel(prefix="hub.")
                loop = asyncio.get_running_loop()
                self._task = loop.create_task(self._run(name))
                expiry = getattr(self.layer, "group_expiry", None)
                if expiry:
                    # The core layer forgets group members after group_expiry: renew ours well before.
                    self._refresh_task = loop.create_task(self._refresh(name, max(1.0, expiry / 4)))
                self._probe_task = loop.create_task(self._probe(name))
                self.channel_name = name
        return self.channel_name

    async def join(self, group: str, member: HubMember) -> None:
        """Add `member` to `group`; returns once this process is subscribed to it."""
        if group_tenant(group) != member.organization_id:
            raise ValueError(f"group {group} is outside the member's organisation")
        members = self.groups.get(group)
        if members is None:
            members = self.groups[group] = {member}
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._subscribing[group] = done
            try:
                name = await self._ensure_started()
                await self.layer.group_add(group, name)
            except Exception:  # noqa: BLE001 - the layer is away: serve the socket, subscribe on recovery
                logger.warning("group_add %s failed; subscribing when the channel layer is back", group)
                self._unsubscribed.add(group)
                self.degraded = True
            except BaseException:
                # Not subscribed: forget the group so the next join tries again.
                if self.groups.get(group) is members:
                    del self.groups[group]
                raise
            finally:
                self._subscribing.pop(group, None)
                done.set_result(None)
            return
        members.add(member)
        pending = self._subscribing.get(group)
        if pending is not None:
            await asyncio.shield(pending)

    async def leave(self, group: str, member: HubMember) -> None:
        members = self.groups.get(group)
        if members is None:
            return
        members.discard(member)
        if not members and group not in self._subscribing:
            del self.groups[group]
            self._unsubscribed.discard(group)
            if self.channel_name is not None:
                try:
                    await self.layer.group_discard(group, self.channel_name)
                except Exception:  # noqa: BLE001
                    logger.warning("group_discard %s failed", group, exc_info=True)

    async def _run(self, name: str) -> None:
        while True:
            try:
                event = await self.layer.receive(name)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis hiccup: keep serving, clients recover by cursor
                logger.warning("hub receive failed", exc_info=True)
                metrics.channel_layer_reconnects.inc()
                await asyncio.sleep(0.5)
                continue
            self.received += 1
            if event.get("type") == PROBE_EVENT:
                self._probe_seen = max(self._probe_seen, int(event.get("n") or 0))
                continue
            try:
                self.dispatch(event)
            except Exception:  # noqa: BLE001 - one bad event must not stop delivery
                logger.exception("hub could not deliver %r", event.get("type"))

    async def _probe(self, name: str) -> None:
        """Publish a probe to this process's own group every PROBE_SECONDS; see `degraded`."""
        n = 0
        subscribed = False
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            n += 1
            try:
                if not subscribed:
                    await self.layer.group_add(self.probe_group, name)
                    subscribed = True
                await self.layer.group_send(self.probe_group, {"type": PROBE_EVENT, "group": self.probe_group, "n": n})
            except Exception:  # noqa: BLE001 - the layer is away; keep probing
                self._mark_degraded()
                continue
            deadline = asyncio.get_running_loop().time() + PROBE_TIMEOUT_SECONDS
            while self._probe_seen < n and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            if self._probe_seen < n:
                self._mark_degraded()
            elif self.degraded:
                await self._recover(name)

    def _mark_degraded(self) -> None:
        if not self.degraded:
            logger.warning("channel layer unreachable; open sockets catch up by cursor when it is back")
        self.degraded = True
        for members in self.groups.values():
            for member in members:
                member.outage_begins()

    async def _recover(self, name: str) -> None:
        """The probe came back: subscribe the groups joined meanwhile, then make every member catch up."""
        for group in list(self._unsubscribed):
            try:
                await self.layer.group_add(group, name)
            except Exception:  # noqa: BLE001 - still away: the next probe tries again
                return
            self._unsubscribed.discard(group)
        self.degraded = False
        self.resyncs += 1
        members = {member for group in self.groups.values() for member in group}
        logger.warning("channel layer back; %d sockets catch up by cursor", len(members))
        for member in members:
            member.resync()

    async def _refresh(self, name: str, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for group in list(self.groups):
                try:
                    await self.layer.group_add(group, name)
                except Exception:  # noqa: BLE001
                    logger.warning("group refresh %s failed", group, exc_info=True)

    def dispatch(self, event: dict[str, Any]) -> None:
        """Deliver one channel-layer event to this process's members of its group."""
        group = event.get("group")
        if not isinstance(group, str):
            return
        members = self.groups.get(group)
        if not members:
            return
        kind = event.get("type")
        if kind == "notification.new":
            self._notification(group, members, event)
        elif kind == "notification.batch":
            for item in event.get("items") or ():
                self._notification(group, members, item)
        elif kind == "inbox.update":
            frame = {k: v for k, v in event.items() if k not in ("type", "group", "unread_count")}
            update = shared_text_message({"type": "update", **frame})
            count = event.get("unread_count")
            counted = shared_text_message({"type": "unread_count", "count": count}) if isinstance(count, int) else None
            for member in list(members):
                member.offer(update)
                if counted is not None:
                    member.offer(counted)
        elif kind == "subscriber.erased":
            for member in list(members):
                member.subscriber_erased()
        elif kind == "preferences.changed":
            opted_out = frozenset(str(c) for c in event.get("opted_out") or ())
            for member in members:
                member.opted_out = opted_out
        elif kind == "topic.membership":
            self._topic_membership(group, event)
        elif kind in ("key.revoked", "key.expiring"):
            at = event.get("expires_at")
            on_key = [m for m in members if m.api_key_id is not None and m.api_key_id == event.get("api_key_id")]
            for member in on_key:
                if kind == "key.revoked":
                    member.key_revoked()
                elif isinstance(at, int | float):
                    member.key_expires(float(at))

    def _notification(self, group: str, members: set[HubMember], event: dict[str, Any]) -> None:
        payload = event["notification"]
        seq = int(payload["seq"])
        message = shared_text_message({"type": "notification", "notification": payload, "cursor": seq})
        category = (payload.get("category") or "") if event.get("audience") in ("topic", "broadcast") else None
        pks = event.get("subscriber_pks")
        if pks is not None:
            organization_id = group_tenant(group)
            targets: list[HubMember] = []
            for pk in pks:
                targets.extend(self.groups.get(subscriber_group(organization_id, int(pk)), ()))
        else:
            targets = list(members)
        for member in targets:
            member.offer_notification(message, seq, category)
        receipts.delivered(group_tenant(group), str(payload["id"]), targets, category)
        metrics.notifications_delivered_to(len(targets), payload.get("created_at"))

    def _topic_membership(self, group: str, event: dict[str, Any]) -> None:
        organization_id = group_tenant(group)
        topic = topic_group(organization_id, int(event["topic_pk"]))
        for key in ("added", "removed"):
            for pk in event.get(key) or ():
                for member in list(self.groups.get(subscriber_group(organization_id, int(pk)), ())):
                    member.topic_change(topic, joined=key == "added")


PROBE_EVENT = "hub.probe"
PROBE_SECONDS = 1.0
# A probe not back by then counts as lost (generous: a busy process must not resync every socket for nothing).
PROBE_TIMEOUT_SECONDS = 5.0

_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    """This event loop's hub (created on first use)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        for old in [old for old in _hubs if old.is_closed()]:
            del _hubs[old]
        found = _hubs[loop] = Hub(get_channel_layer())
    return found
