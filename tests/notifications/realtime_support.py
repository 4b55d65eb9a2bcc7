"""Helpers for the real-time tests: Herald's HTTP API, and `websockets` clients on /v1/ws."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
import websockets
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import tenant_context
from websockets.asyncio.client import ClientConnection, connect

from notifications.models import InboxItem, Message, MessageSequence, Subscriber
from notifications.proofs import subscriber_hash, subscriber_token
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


async def api_call(server: Any, org: Org, method: str, path: str, body: Any = None) -> Any:
    """Call Herald's HTTP API with the organisation's secret key; the JSON answer (2xx only)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {org.secret_key}"})
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def api_send(server: Any, org: Org, **body: Any) -> dict[str, Any]:
    """POST /v1/notifications: {"id", "seq", "recipients"} once it committed."""
    return await api_call(server, org, "POST", "/v1/notifications", {"title": "Hello", **body})  # type: ignore[no-any-return]


async def api_topic_add(server: Any, org: Org, key: str, subscriber_ids: list[str]) -> None:
    await api_call(server, org, "PUT", f"/v1/topics/{key}", {"name": key})
    await api_call(server, org, "POST", f"/v1/topics/{key}/subscribers", {"subscriber_ids": subscriber_ids})


async def api_preferences_set(
    server: Any, org: Org, secret: str, subscriber_id: str, categories: dict[str, bool]
) -> None:
    """PUT /v1/inbox/preferences as the widget does: publishable key, Origin, subscriber proof."""
    headers = {
        "X-Herald-Publishable-Key": org.publishable_key,
        "X-Herald-Subscriber": subscriber_id,
        "X-Herald-Subscriber-Hash": subscriber_hash(secret, subscriber_id),
        "Origin": ALLOWED_ORIGIN,
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.put("/v1/inbox/preferences", json={"categories": categories}, headers=headers)
    assert response.status_code == 200, response.text


def message_store(org: Org, *, to: list[str], title: str = "Hello") -> dict[str, Any]:
    """Write a message and its inbox items straight to the database (no publish), for in-process tests."""
    with tenant_context(org.organization), transaction.atomic():
        MessageSequence.objects.get_or_create(pk=1)
        MessageSequence.objects.filter(pk=1).update(value=F("value") + 1)
        seq = MessageSequence.objects.get(pk=1).value
        recipients = [Subscriber.objects.get_or_create(external_id=sid)[0] for sid in to]
        message = Message.objects.create(seq=seq, audience="subscribers", title=title, recipient_count=len(recipients))
        InboxItem.objects.bulk_create([InboxItem(message=message, subscriber=s, seq=seq) for s in recipients])
        return inbox_item_payload(message)


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
