"""Structured logs through a real `herald serve`: JSON lines with request id, organisation and route, and no
key, token, signing secret or notification body anywhere in them."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
from django.utils import timezone

from herald.logs import redact
from tests.conftest import Org
from tests.deploy.support import ServeProcess, production_env
from tests.notifications.realtime_support import (
    api_send,
    auth_frame,
    open_socket,
    run_db,
    signing_secret,
    subscribe,
)
from tests.servers import test_database_url as database_url


async def test_production_logs_are_json_with_context_and_without_secrets(acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    env = production_env(LOG_LEVEL="INFO", DATABASE_URL=database_url())
    server = ServeProcess(env=env)
    await asyncio.to_thread(server.start)
    marker_title, marker_body = "title-marker-5d1c", "body-marker-9a7e private words"
    token_frame = auth_frame(secret, "logged-2", token_expires=timezone.now() + timedelta(minutes=5))
    hash_frame = auth_frame(secret, "logged-1")
    try:
        client, _, _ = await subscribe(server, acme, secret, "logged-1")
        token_client = await open_socket(server, acme)
        await token_client.send(token_frame)
        await token_client.recv_type("ready", timeout=10)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            sent = await http.post(
                "/v1/notifications",
                json={"to": ["logged-1"], "title": marker_title, "body": marker_body},
                headers={"Authorization": f"Bearer {acme.secret_key}", "X-Request-ID": "send-req-1"},
            )
            assert sent.status_code == 202, sent.text
            assert sent.headers["x-request-id"] == "send-req-1"
            listed = await http.get(
                "/v1/subscribers/logged-1",
                headers={"Authorization": f"Bearer {acme.secret_key}", "X-Request-ID": "read-req-1"},
            )
            assert listed.status_code == 200, listed.text
            wrong = acme.secret_key[:-3] + "AAA"
            refused = await http.get("/v1/subscribers", headers={"Authorization": f"Bearer {wrong}"})
            assert refused.status_code == 401
            bad = await http.post(
                "/v1/notifications",
                content=b'{"title": "' + marker_body.encode() + b'", ',
                headers={"Authorization": f"Bearer {acme.secret_key}", "Content-Type": "application/json"},
            )
            assert bad.status_code == 400
        await client.recv_type("notification")
        await api_send(server, acme, to=["logged-2"], title=marker_title, body=marker_body)
        await client.close()
        await token_client.close()
    finally:
        await asyncio.to_thread(server.stop)
    output = server.full_output()
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    by_id = {r["request_id"]: r for r in records if r.get("message") == "request" and "request_id" in r}
    send = by_id["send-req-1"]
    assert send["organization_id"] == acme.organization.pk
    assert send["route"] == "/v1/notifications"
    assert send["status"] == 202 and send["method"] == "POST"
    sockets = [r for r in records if r.get("route") == "/v1/ws"]
    assert sockets and all(r["organization_id"] == acme.organization.pk for r in sockets)
    read = by_id["read-req-1"]
    assert read["organization_id"] == acme.organization.pk
    assert read["route"] == "/v1/subscribers/<subscriber_id>"  # the pattern: no subscriber id
    for forbidden in (
        acme.secret_key,
        acme.publishable_key,
        wrong,
        secret,
        hash_frame["subscriber_hash"],
        token_frame["token"],
        marker_title,
        "body-marker-9a7e",
        "logged-1",  # subscriber ids stay out of routes
    ):
        assert forbidden not in output, forbidden


def test_redact_removes_every_kind_of_secret() -> None:
    samples = [
        "sk_live_7R4HHtYKeSbdO8vhds3fRZ1Ebax9",
        "pk_live_9ZSvBcP9CUiSktnqVQKBsf3vY9CC",
        "sk_test_51HxYzAbC",
        "whsec_abc123DEF",
        "whsk_Zm9vYmFyLWJhei1xdXV4LXNlY3JldA",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1XzQyIn0.c2lnbmF0dXJl",
        "Bearer opaque-token-value",
        "5f2b" * 16,
    ]
    for sample in samples:
        text = f"before {sample} after"
        assert redact(text) == "before [redacted] after", sample
    assert redact("GET /v1/subscribers 200 in 3 ms") == "GET /v1/subscribers 200 in 3 ms"
