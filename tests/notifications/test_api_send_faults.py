"""Sends while PostgreSQL drops the send engine's connections: a send that failed before its commit is tried
once more on a fresh connection; if that fails too the answer is 503 with Retry-After, never a 500, and no
202 is ever given without its row. Only this test's own server's backends are terminated (by their
application_name, herald-send-<pid>); the database server itself is never touched."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from django.db import connection

from notifications.models import Message
from tests.conftest import Org
from tests.servers import HeraldServer


def _terminate_send_backends(server: HeraldServer) -> int:
    """Terminate every backend of `server`'s send engine; how many."""
    assert server.process is not None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            [f"herald-send-{server.process.pid}"],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _send(server: HeraldServer, org: Org, title: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/notifications",
        json={"to": ["ada"], "title": title},
        headers={"Authorization": f"Bearer {org.secret_key}"},
        timeout=30,
    )


def test_a_send_on_a_terminated_connection_is_retried_on_a_fresh_one(acme: Org) -> None:
    with HeraldServer(env={"HERALD_INGEST_POOL_SIZE": "2"}) as server:
        assert _send(server, acme, "warm up").status_code == 202  # the pool is open, its connections idle
        deadline = time.monotonic() + 10
        while _terminate_send_backends(server) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # until both pooled connections are gone
        sent = _send(server, acme, "after the kill")
        assert sent.status_code == 202, sent.text
        assert "lost its connection; once more" in server.output()
    with acme.activate():
        assert Message.objects.filter(pk=sent.json()["id"], title="after the kill").exists()


def test_a_burst_while_backends_are_terminated_never_answers_500_nor_202_without_a_row(acme: Org) -> None:
    stop = threading.Event()
    terminated = 0

    with HeraldServer(env={"HERALD_INGEST_POOL_SIZE": "2"}) as server:

        def terminator() -> None:
            nonlocal terminated
            try:
                for _ in range(400):  # bounded: at most ~20 s
                    if stop.is_set():
                        return
                    terminated += _terminate_send_backends(server)
                    time.sleep(0.05)
            finally:
                connection.close()  # this thread's connection back: it is not Django's

        killer = threading.Thread(target=terminator)
        killer.start()
        try:
            with ThreadPoolExecutor(max_workers=16) as pool:
                responses = list(pool.map(lambda i: _send(server, acme, f"burst {i}"), range(300)))
        finally:
            stop.set()
            killer.join(30)
    statuses = [r.status_code for r in responses]
    assert terminated > 0, "no backend was terminated: the test proved nothing"
    assert set(statuses) <= {202, 503}, [r.text for r in responses if r.status_code not in (202, 503)]
    assert statuses.count(202) > 0
    for response in responses:
        if response.status_code == 503:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith("/service-unavailable")
            assert int(response.headers["Retry-After"]) >= 1
    accepted = [r.json()["id"] for r in responses if r.status_code == 202]
    with acme.activate():
        assert Message.objects.filter(pk__in=accepted).count() == len(accepted)
