"""Inbox lists cost a fixed number of queries: a page of 50 items costs what a page of 1 costs."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import Org
from tests.notifications.api_support import Api, server_api, widget_api


def _counted(api: Api, path: str) -> tuple[int, list[dict[str, Any]], list[str]]:
    """The number of queries a GET ran, the page's items and the SQL (for failure messages)."""
    with CaptureQueriesContext(connection) as queries:
        response = api.get(path)
    assert response.status_code == 200, response.content
    return len(queries.captured_queries), response.json()["items"], [q["sql"] for q in queries.captured_queries]


def test_inbox_lists_query_count_is_the_same_for_1_and_50_items(acme: Org) -> None:
    server = server_api(acme)
    assert server.post("/v1/notifications", {"to": ["one"], "title": "only"}).status_code == 202
    batch = server.post(
        "/v1/notifications/batch", {"notifications": [{"to": ["many"], "title": f"n{i}"} for i in range(50)]}
    )
    assert batch.status_code == 200 and [r["status"] for r in batch.json()["results"]] == [202] * 50
    widgets = {subscriber: widget_api(acme, subscriber) for subscriber in ("one", "many")}
    # Warm the key cache and the once-a-minute last_used_at write of both keys.
    assert server.get("/v1/subscribers/one/notifications").status_code == 200
    assert widgets["one"].get("/v1/inbox/notifications").status_code == 200

    counts: dict[str, dict[int, int]] = {"server": {}, "widget": {}}
    for subscriber, size in (("one", 1), ("many", 50)):
        count, items, sql = _counted(server, f"/v1/subscribers/{subscriber}/notifications?limit=100")
        assert len(items) == size and len({item["id"] for item in items}) == size
        counts["server"][size] = count
        count, items, sql = _counted(widgets[subscriber], "/v1/inbox/notifications?limit=100")
        assert len(items) == size and len({item["id"] for item in items}) == size
        counts["widget"][size] = count

    # Server: SET search_path, the subscriber's pk, the page with its messages.
    # Widget: SET search_path to public and the signing secrets (the subscriber proof) on Django's connection; the
    # page itself is ONE statement on the send pool (notifications.inbox.inbox_page), outside this count.
    assert counts == {"server": {1: 3, 50: 3}, "widget": {1: 2, 50: 2}}, (counts, sql)
