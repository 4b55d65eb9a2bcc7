"""Helpers for the real-time tests: send messages the way the API does, and talk to sockets.

`message_send` writes a message and its inbox items in one transaction and
publishes after commit through notifications.realtime, as the send service
does; tests use it until they go through the HTTP send endpoint.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import websockets
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import tenant_context
from websockets.asyncio.client import ClientConnection, connect

from notifications.models import InboxItem, Message, MessageSequence, Subscriber, Topic, TopicSubscription
from notifications.proofs import subscriber_hash, subscriber_token
from notifications.realtime import publish_message_after_commit, publish_topic_membership_after_commit
from notifications.schemas import inbox_item_payload
from tenants.models import SigningSecret
from tests.conftest import ALLOWED_ORIGIN, Org

T = TypeVar("T")


async def run_db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a sync database function in a worker thread that closes its connection after,
    so the test database can be dropped at the end of the run."""

    def call() -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return await asyncio.to_thread(call)


def signing_secret(org: Org) -> str:
    return SigningSecret.objects.filter(organization=org.organization).values_list("secret", flat=True)[0]


def subscriber_pk(org: Org, external_id: str) -> int:
    with tenant_context(org.organization):
        return Subscriber.objects.get_or_create(external_id=external_id)[0].pk


def message_send(
    org: Org,
    *,
    to: list[str] | None = None,
    topic: str | None = None,
    broadcast: bool = False,
    title: str = "Hello",
    category: str = "",
) -> dict[str, Any]:
    """Store a message and its inbox items, publish after commit; the payload as recipients see it."""
    with tenant_context(org.organization), transaction.atomic():
        sequence, _ = MessageSequence.objects.get_or_create(pk=1)
        MessageSequence.objects.filter(pk=1).update(value=F("value") + 1)
        sequence.refresh_from_db()
        topic_row = None
        if broadcast:
            recipients = list(Subscriber.objects.all())
            audience = "broadcast"
        elif topic is not None:
            topic_row = Topic.objects.get(key=topic)
            recipients = [
                s.subscriber for s in TopicSubscription.objects.filter(topic=topic_row).select_related("subscriber")
            ]
            audience = "topic"
        else:
            recipients = [Subscriber.objects.get_or_create(external_id=sid)[0] for sid in to or []]
            audience = "subscribers"
        message = Message.objects.create(
            seq=sequence.value,
            audience=audience,
            topic=topic_row,
            title=title,
            category=category,
            recipient_count=len(recipients),
        )
        InboxItem.objects.bulk_create(
            [InboxItem(message=message, subscriber=s, seq=message.seq, category=category) for s in recipients]
        )
        payload = inbox_item_payload(message)
        publish_message_after_commit(
            organization_id=org.organization.pk,
            notification=payload,
            audience=audience,
            topic_pk=topic_row.pk if topic_row else None,
            subscriber_pks=[s.pk for s in recipients],
        )
    return payload


def topic_add(org: Org, key: str, external_ids: list[str]) -> None:
    """Create the topic if needed, add subscribers, tell live sockets after commit."""
    with tenant_context(org.organization), transaction.atomic():
        topic, _ = Topic.objects.get_or_create(key=key)
        pks = []
        for sid in external_ids:
            subscriber = Subscriber.objects.get_or_create(external_id=sid)[0]
            TopicSubscription.objects.get_or_create(topic=topic, subscriber=subscriber)
            pks.append(subscriber.pk)
        publish_topic_membership_after_commit(organization_id=org.organization.pk, topic_pk=topic.pk, added=pks)


def backdate_messages(org: Org, *, days: int) -> None:
    with tenant_context(org.organization):
        Message.objects.update(created_at=timezone.now() - timedelta(days=days))


@dataclass
class Client:
    """A `websockets` client on /v1/ws with a few protocol helpers."""

    ws: ClientConnection

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame of `kind`, skipping others."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - asyncio.get_running_loop().time()))
            if frame["type"] == kind:
                return frame

    async def nothing_within(self, seconds: float) -> bool:
        """True when no frame arrives for `seconds`."""
        try:
            frame = await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected frame {frame!r}")

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; its close code."""
        try:
            async with asyncio.timeout(timeout):
                async for _ in self.ws:
                    pass
        except websockets.ConnectionClosed:
            pass
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


def ws_url(server: Any, org: Org | None = None, *, key: str | None = None) -> str:
    pk = key if key is not None else (org.publishable_key if org else "")
    return f"{server.ws_url}/v1/ws?pk={pk}"


async def open_socket(server: Any, org: Org, *, origin: str = ALLOWED_ORIGIN, key: str | None = None) -> Client:
    ws = await connect(ws_url(server, org, key=key), origin=origin, max_size=2**22, open_timeout=10)  # type: ignore[arg-type]
    return Client(ws)


def auth_frame(
    secret: str,
    subscriber_id: str,
    *,
    cursor: int | None = None,
    token_expires: datetime | None = None,
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "auth", "subscriber_id": subscriber_id, "cursor": cursor}
    if token_expires is not None:
        frame["token"] = subscriber_token(secret, subscriber_id, token_expires)
    else:
        frame["subscriber_hash"] = subscriber_hash(secret, subscriber_id)
    return frame


async def subscribe(
    server: Any,
    org: Org,
    secret: str,
    subscriber_id: str,
    *,
    cursor: int | None = None,
    origin: str = ALLOWED_ORIGIN,
) -> tuple[Client, dict[str, Any], list[dict[str, Any]]]:
    """Open, authenticate, read up to `ready`: (client, ready frame, frames before it)."""
    client = await open_socket(server, org, origin=origin)
    await client.send(auth_frame(secret, subscriber_id, cursor=cursor))
    before = []
    while True:
        frame = await client.recv(10)
        if frame["type"] == "ready":
            return client, frame, before
        before.append(frame)
