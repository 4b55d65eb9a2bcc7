"""Erasing a subscriber while sends are in flight leaves no inbox item behind.

Inbox items carry no database foreign keys (notifications.models.InboxItem): the
erasure locks the inbox table against inserts instead. These tests hold one side
of the race open in a second PostgreSQL connection and check both orders.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from django.db import connection

from notifications import services
from notifications.models import InboxItem, Subscriber
from notifications.sending import SEND_SQL, NotificationDraft, send_prepare
from tests.conftest import Org
from tests.notifications.api_support import server_api
from tests.servers import HeraldServer
from tests.servers import test_database_url as database_url


@pytest.fixture
def raw(acme: Org) -> Iterator[psycopg.Connection[Any]]:
    """A second connection in acme's schema, inside a transaction the test ends."""
    with psycopg.connect(database_url()) as conn:
        conn.execute(f'SET search_path TO "{acme.schema_name}", public')
        yield conn


def _in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(target())
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which fails on it
            outcome.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _wait_for_lock_waiters(count: int) -> None:
    """Until `count` sessions of this database wait on a lock (10 s at most)."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting and waiting[0] >= count:
                return
            time.sleep(0.02)
    raise AssertionError(f"fewer than {count} sessions ever waited on a lock")


def _items_of(org: Org, external_id: str, pk: int) -> int:
    with org.activate():
        return InboxItem.objects.filter(subscriber_id=pk).count()


def test_erasure_waits_for_a_send_in_flight_and_then_removes_its_items(acme: Org, raw: psycopg.Connection[Any]) -> None:
    api = server_api(acme)
    for subscriber in ("gone", "stays"):
        assert api.put(f"/v1/subscribers/{subscriber}", {}).status_code == 200
    with acme.activate():
        gone = Subscriber.objects.get(external_id="gone").pk
    # The engine's own statement, held open in a second connection: a send between its write and its commit.
    prepared = send_prepare([NotificationDraft(title="in flight", broadcast=True)], {}, [uuid.uuid4()])
    raw.execute(SEND_SQL, prepared.params)  # written, not committed

    def erase() -> bool:
        with acme.activate():
            return services.subscriber_delete(external_id="gone")

    thread, outcome = _in_thread(erase)
    _wait_for_lock_waiters(1)
    assert thread.is_alive()
    raw.commit()
    thread.join(10)
    assert outcome == [True]
    assert _items_of(acme, "gone", gone) == 0
    with acme.activate():
        assert InboxItem.objects.filter(subscriber__external_id="stays").count() == 1


def test_a_send_waiting_on_an_erasure_does_not_reach_the_erased_subscriber(
    acme: Org, raw: psycopg.Connection[Any], herald_server: HeraldServer
) -> None:
    api = server_api(acme)
    for subscriber in ("gone", "stays"):
        assert api.put(f"/v1/subscribers/{subscriber}", {}).status_code == 200
    with acme.activate():
        gone = Subscriber.objects.get(external_id="gone").pk
    # Hold the subscriber's row: the erasure takes the inbox lock, deletes the items, then waits here.
    raw.execute("SELECT 1 FROM notifications_subscriber WHERE id = %s FOR UPDATE", [gone])

    def erase() -> bool:
        with acme.activate():
            return services.subscriber_delete(external_id="gone")

    eraser, erased = _in_thread(erase)
    _wait_for_lock_waiters(1)

    def broadcast() -> httpx.Response:  # through uvicorn: the send engine
        return httpx.post(
            herald_server.url + "/v1/notifications",
            json={"broadcast": True, "title": "after"},
            headers={"Authorization": f"Bearer {acme.secret_key}"},
            timeout=20,
        )

    sender, sent = _in_thread(broadcast)
    _wait_for_lock_waiters(2)  # the send waits for the erasure's lock on the inbox
    assert sender.is_alive()
    raw.commit()
    eraser.join(10)
    sender.join(20)
    assert erased == [True]
    assert sent[0].status_code == 202, sent[0].content
    assert sent[0].json()["recipients"] == 1
    assert _items_of(acme, "gone", gone) == 0
