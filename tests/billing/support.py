"""Helpers of the billing tests: message rows written straight into a schema (a month's worth, fast), sends
through a real server, and the counts the ledger must agree with."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
from django.db import connection

from billing.quotas import quota_key
from notifications.models import InboxItem, Message
from tenants.ratelimit import redis_client
from tests.conftest import Org
from tests.servers import HeraldServer


def messages_insert(org: Org, count: int, *, at: datetime | None = None) -> None:
    """`count` message rows (no recipients) created at `at` (now): what a month of sends leaves behind.

    Their sequence numbers are negative, so they never meet the ones the send engine hands out."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO "{org.schema_name}".{Message._meta.db_table}
                    (id, seq, audience, title, body, action_url, category, data, recipient_count, created_at)
                SELECT gen_random_uuid(), -(coalesce((SELECT -min(seq) FROM "{org.schema_name}".{Message._meta.db_table}
                                                       WHERE seq < 0), 0) + g),
                       'subscribers', 'seeded', '', '', '', '{{}}', 0, %s
                FROM generate_series(1, %s) AS g""",
            [at or datetime.now(tz=UTC), count],
        )


def send(server: HeraldServer, org: Org, title: str, to: list[str] | None = None) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/notifications",
        json={"to": to or ["ada"], "title": title},
        headers={"Authorization": f"Bearer {org.secret_key}"},
        timeout=20,
    )


def send_batch(server: HeraldServer, org: Org, titles: list[str], to: list[str] | None = None) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/notifications/batch",
        json={"notifications": [{"to": to or ["ada"], "title": t} for t in titles]},
        headers={"Authorization": f"Bearer {org.secret_key}"},
        timeout=20,
    )


def messages_titled(org: Org, title: str) -> tuple[int, int]:
    """(message rows, inbox rows) of messages with this title."""
    with org.activate():
        ids = list(Message.objects.filter(title=title).values_list("id", flat=True))
        return len(ids), InboxItem.objects.filter(message_id__in=ids).count()


def quota_counter_forget(org: Org) -> None:
    """Clear the shared Redis counter of the organisation's month (the cache; the rows stay)."""
    period = datetime.now(tz=UTC).strftime("%Y%m")
    redis_client().delete(quota_key(org.organization.pk, period))


def inbox_rows_per_day(org: Org, start: date, end: date) -> dict[str, int]:
    """The truth the figures must match: inbox rows per UTC day of their creation."""
    with org.activate(), connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT (created_at AT TIME ZONE 'UTC')::date, count(*)
                FROM "{org.schema_name}".{InboxItem._meta.db_table}
                WHERE created_at >= %s AND created_at < %s GROUP BY 1""",
            [
                datetime.combine(start, time(), tzinfo=UTC),
                datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC),
            ],
        )
        found = {row[0].isoformat(): int(row[1]) for row in cursor.fetchall()}
    day, days = start, {}
    while day <= end:
        days[day.isoformat()] = found.get(day.isoformat(), 0)
        day += timedelta(days=1)
    return days


def problem(response: httpx.Response, slug: str) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["type"] == f"https://herald.dev/problems/{slug}", body
    return body
