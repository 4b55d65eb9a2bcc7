"""Publishing to live sockets: always after commit, never the source of truth.

The database holds every message; what is published here is a hint that lets
open sockets show it at once. A publish that fails loses nothing: clients
recover by cursor on their next connect.

Events on the channel layer (what notifications.hub consumes). Every event
names the `group` it was sent to, so a process decodes it once and hands one
pre-built frame to all its local members of that group:

    {"type": "notification.new", "group": g, "audience": "subscribers" | "topic" | "broadcast",
     "notification": <inbox item payload>, "subscriber_pks": [int, ...]?}
        to t<org>.s<pk> (one or a few recipients), t<org>.topic<pk>, or t<org>.all
        (broadcasts, and long recipient lists: then `subscriber_pks` says who).
    {"type": "notification.batch", "group": g, "items": [{"audience": "subscribers", "notification": ...,
     "subscriber_pks": [int, ...]}, ...]}
        to t<org>.all: many messages to named subscribers sent together (a batch, or sends coalesced into
        one transaction), in one publish instead of one per subscriber; each item as notification.new.
    {"type": "key.revoked", "group": g, "api_key_id": int}
        to t<org>.all: sockets opened with that publishable key close with 4403.
    {"type": "key.expiring", "group": g, "api_key_id": int, "expires_at": float (Unix time)}
        to t<org>.all: that publishable key was rolled; sockets opened with it close with 4403 at `expires_at`.
    {"type": "inbox.update", "group": g, "notification": {"id", "read_at", "seen_at", "archived_at"},
     "unread_count": int | None}
    {"type": "inbox.update", "group": g, "all_read": true, "read_at": iso, "unread_count": 0}
        to t<org>.s<pk>: read state changed (socket, HTTP API, another device).
    {"type": "preferences.changed", "group": g, "opted_out": ["category", ...]}
        to t<org>.s<pk>: the subscriber's category opt-outs, complete.
    {"type": "subscriber.erased", "group": g}
        to t<org>.s<pk>: the subscriber was erased; its live sockets close with 4401.
    {"type": "topic.membership", "group": g, "topic_pk": int, "added": [pk, ...], "removed": [pk, ...]}
        to t<org>.all: live sockets of those subscribers join / leave the topic group.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from herald import metrics
from herald.compat import asgiref_runs_for_a_loop, pubsub_publish_pipelined
from notifications.groups import organization_group, subscriber_group, topic_group

logger = logging.getLogger(__name__)

# Up to this many recipients a message is published to each subscriber group;
# above it, once to the organisation's group with the list of recipients.
DIRECT_PUBLISH_MAX = 4
# Messages to named subscribers sent together go out as ONE `notification.batch` event when they would
# otherwise take more than this many publishes; at most BUNDLE_MAX messages per event. A batch of 100
# sends took 100 PUBLISH commands, about a fifth of the server's CPU per batch (py-spy, ingest bench).
BUNDLE_FROM = 8
BUNDLE_MAX = 100


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


class _PublisherLoop:
    """One long-lived event loop for publishing from threads that have none.

    `async_to_sync` from a plain thread makes a new loop, and so a new Redis
    connection, per call (7.1 ms against 1.5 ms, docs/architecture.md, measured).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="herald-publisher", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, factory: Callable[[], Coroutine[Any, Any, None]], timeout: float = 5.0) -> None:
        asyncio.run_coroutine_threadsafe(factory(), self.loop()).result(timeout)


_publisher = _PublisherLoop()


async def agroup_send(group: str, event: dict[str, Any]) -> None:
    """Publish from async code: awaited on the caller's long-lived loop; failures are logged, not raised."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group, {**event, "group": group})
    except Exception:  # noqa: BLE001 - the database already holds it; clients catch up by cursor
        logger.warning("publish to %s failed", group, exc_info=True)
        metrics.channel_layer_publish_failures.inc()


async def agroup_send_many(pairs: list[tuple[str, dict[str, Any]]]) -> None:
    """Publish many (group, event) pairs; on the PubSub layer, one pipelined round trip per shard.

    A batch of 100 sends otherwise pays 100 sequential PUBLISH round trips (herald.compat reaches into
    channels-redis for it); any other layer gets one `group_send` per pair.
    """
    if not pairs:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    if await pubsub_publish_pipelined(layer, [(group, {**event, "group": group}) for group, event in pairs]):
        return
    for group, event in pairs:
        await agroup_send(group, event)


def _publish_now(pairs: list[tuple[str, dict[str, Any]]]) -> None:
    """Publish from sync code, on a loop that keeps its Redis connection; failures are logged."""
    if not pairs:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        # Sync code called straight from a running loop (rare): never block it.
        loop.create_task(agroup_send_many(pairs))
        return
    try:
        if asgiref_runs_for_a_loop():
            async_to_sync(agroup_send_many)(pairs)
        else:
            _publisher.run(lambda: agroup_send_many(pairs))
    except Exception:  # noqa: BLE001
        logger.warning("publishing %d events failed", len(pairs), exc_info=True)
        metrics.channel_layer_publish_failures.inc(len(pairs))


def _group_send(group: str, event: dict[str, Any]) -> None:
    _publish_now([(group, event)])


def publish_events_after_commit(pairs: list[tuple[str, dict[str, Any]]]) -> None:
    """After commit, publish (group, event) pairs, e.g. from message_events, in one round trip."""
    if pairs:
        transaction.on_commit(lambda: _publish_now(pairs))


def message_events(
    *,
    organization_id: int,
    notification: dict[str, Any],
    audience: str,
    topic_pk: int | None = None,
    subscriber_pks: list[int] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The (group, event) pairs that announce a new message: one per audience."""
    event: dict[str, Any] = {"type": "notification.new", "audience": audience, "notification": notification}
    if audience == "broadcast":
        return [(organization_group(organization_id), event)]
    if audience == "topic" and topic_pk is not None:
        return [(topic_group(organization_id, topic_pk), event)]
    pks = sorted(set(subscriber_pks or []))
    if len(pks) <= DIRECT_PUBLISH_MAX:
        return [(subscriber_group(organization_id, pk), event) for pk in pks]
    return [(organization_group(organization_id), {**event, "subscriber_pks": pks})]


def messages_events(organization_id: int, messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The (group, event) pairs for several new messages (keyword arguments of message_events, each).

    Messages to named subscribers are bundled into `notification.batch` events on the organisation's
    group when one publish each would be more than BUNDLE_FROM; topic and broadcast messages keep theirs.
    """
    pairs: list[tuple[str, dict[str, Any]]] = []
    named: list[dict[str, Any]] = []
    for message in messages:
        if message["audience"] == "subscribers" and message.get("subscriber_pks"):
            named.append(message)
        else:
            pairs += message_events(organization_id=organization_id, **message)
    direct = [pair for m in named for pair in message_events(organization_id=organization_id, **m)]
    if len(direct) <= BUNDLE_FROM:
        return pairs + direct
    group = organization_group(organization_id)
    for start in range(0, len(named), BUNDLE_MAX):
        items = [
            {
                "audience": "subscribers",
                "notification": m["notification"],
                "subscriber_pks": sorted(set(m["subscriber_pks"])),
            }
            for m in named[start : start + BUNDLE_MAX]
        ]
        pairs.append((group, {"type": "notification.batch", "items": items}))
    return pairs


def publish_key_revoked_after_commit(*, organization_id: int, api_key_id: int) -> None:
    """After commit, close the live sockets opened with this (publishable) key, in every process."""
    event = {"type": "key.revoked", "api_key_id": int(api_key_id)}
    transaction.on_commit(lambda: _group_send(organization_group(organization_id), event))


def publish_key_expiring_after_commit(*, organization_id: int, api_key_id: int, expires_at: datetime) -> None:
    """After commit, tell live sockets opened with this (publishable, rolled) key when it stops working."""
    event = {"type": "key.expiring", "api_key_id": int(api_key_id), "expires_at": expires_at.timestamp()}
    transaction.on_commit(lambda: _group_send(organization_group(organization_id), event))


def publish_to_subscriber_after_commit(*, organization_id: int, subscriber_pk: int, event: dict[str, Any]) -> None:
    """After commit, send `event` (an `update`, `unread_count`, topic or preference change) to one subscriber.

    Build `event` with inbox_update_event / inbox_read_all_event / preferences_changed_event.
    """
    transaction.on_commit(lambda: _group_send(subscriber_group(organization_id, subscriber_pk), event))


def publish_topic_membership_after_commit(
    *, organization_id: int, topic_pk: int, added: list[int] | None = None, removed: list[int] | None = None
) -> None:
    """After commit, let live sockets of these subscribers join or leave the topic, without reconnecting."""
    event = topic_membership_event(topic_pk=topic_pk, added=added, removed=removed)
    if event["added"] or event["removed"]:
        transaction.on_commit(lambda: _group_send(organization_group(organization_id), event))


def topic_membership_event(*, topic_pk: int, added: list[int] | None, removed: list[int] | None) -> dict[str, Any]:
    """Subscribers joined or left a topic: their live sockets (any process) join or leave its group."""
    return {
        "type": "topic.membership",
        "topic_pk": int(topic_pk),
        "added": [int(pk) for pk in added or []],
        "removed": [int(pk) for pk in removed or []],
    }


def inbox_update_event(
    *,
    message_id: str,
    read_at: datetime | None,
    seen_at: datetime | None,
    archived_at: datetime | None,
    unread_count: int | None,
) -> dict[str, Any]:
    """One inbox item's read/seen/archived state changed (and the new unread count, if known)."""
    return {
        "type": "inbox.update",
        "notification": {
            "id": str(message_id),
            "read_at": _iso(read_at),
            "seen_at": _iso(seen_at),
            "archived_at": _iso(archived_at),
        },
        "unread_count": unread_count,
    }


def inbox_read_all_event(*, read_at: datetime) -> dict[str, Any]:
    """Every unread item of the subscriber was marked read at `read_at`."""
    return {"type": "inbox.update", "all_read": True, "read_at": _iso(read_at), "unread_count": 0}


def preferences_changed_event(*, opted_out: list[str]) -> dict[str, Any]:
    """The subscriber's complete list of opted-out categories."""
    return {"type": "preferences.changed", "opted_out": sorted(set(opted_out))}


def subscriber_erased_event() -> dict[str, Any]:
    """The subscriber was erased: its live sockets close (publish with publish_to_subscriber_after_commit)."""
    return {"type": "subscriber.erased"}
