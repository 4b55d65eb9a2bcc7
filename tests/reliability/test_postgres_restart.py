"""PostgreSQL stopped hard and started again during a send burst (a PostgreSQL this test started itself).

While it is away every send is answered 503 with Retry-After and a problem document, never 500; no 202 is
given without its row existing after the restart; `/readyz` names the database while it is down; and once it
is back the same server process accepts sends again, without a restart of its own. (Backends terminated
under a running PostgreSQL: tests/notifications/test_api_send_faults.py.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import Org
from tests.reliability.postgres_support import RestartablePostgres
from tests.servers import HeraldServer


@pytest.fixture
def own_postgres(acme: Org) -> Iterator[RestartablePostgres]:
    postgres = RestartablePostgres().start(schemas=[acme.schema_name])
    yield postgres
    postgres.stop()


def _sender(server: HeraldServer, org: Org, stop: threading.Event, worker: int) -> list[httpx.Response]:
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for n in range(2_000):  # bounded; stopped by `stop` long before
            if stop.is_set():
                break
            answers.append(
                http.post(
                    "/v1/notifications",
                    json={"to": ["ada"], "title": f"w{worker} n{n}"},
                    headers={"Authorization": f"Bearer {org.secret_key}"},
                )
            )
            time.sleep(0.1)  # ~10 sends/s per worker: under the key's rate limit
    return answers


def test_a_postgres_restart_during_a_burst_answers_503_never_500_and_the_server_recovers_by_itself(
    own_postgres: RestartablePostgres, acme: Org
) -> None:
    stop = threading.Event()
    readiness: list[tuple[int, dict[str, object]]] = []
    with HeraldServer(env={"DATABASE_URL": own_postgres.url, "HERALD_INGEST_POOL_SIZE": "2"}) as server:
        with ThreadPoolExecutor(max_workers=4) as pool:
            senders = [pool.submit(_sender, server, acme, stop, w) for w in range(4)]
            try:
                time.sleep(1.5)
                own_postgres.kill()
                down_until = time.monotonic() + 3
                while time.monotonic() < down_until:
                    ready = httpx.get(server.url + "/readyz", timeout=10)
                    readiness.append((ready.status_code, ready.json()))
                    time.sleep(0.3)
                own_postgres.restart()
                restarted_at = time.monotonic()
                # Bounded wait for the first accepted send after the restart, then a little more load.
                recovered = False
                while time.monotonic() < restarted_at + 20 and not recovered:
                    probe = httpx.post(
                        server.url + "/v1/notifications",
                        json={"to": ["ada"], "title": "after the restart"},
                        headers={"Authorization": f"Bearer {acme.secret_key}"},
                        timeout=30,
                    )
                    recovered = probe.status_code == 202
                    if not recovered:
                        time.sleep(0.2)
                time.sleep(1)
            finally:
                stop.set()
            answers = [r for f in senders for r in f.result()]
        back = httpx.get(server.url + "/readyz", timeout=10)
        assert server.process is not None and server.process.poll() is None, "the server process died"

    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {202, 503}, [
        (r.status_code, r.text[:200]) for r in answers if r.status_code not in (202, 503)
    ]
    assert 503 in statuses, "no send was refused: PostgreSQL was not away while sends ran"
    for response in answers:
        if response.status_code == 503:
            assert response.headers["content-type"] == "application/problem+json", response.text[:200]
            assert response.json()["type"].endswith("/service-unavailable")
            assert int(response.headers["Retry-After"]) >= 1
    assert recovered, "no send was accepted within 20 s of PostgreSQL's restart"
    assert back.status_code == 200, back.text
    down = [body for status, body in readiness if status == 503]
    assert down, f"/readyz never said the database was down: {readiness}"
    assert all("database" in body.get("down", []) for body in down), down  # type: ignore[operator]
    accepted = [r.json()["id"] for r in answers if r.status_code == 202]
    assert accepted
    schema = acme.schema_name
    stored = own_postgres.query(
        f'SELECT count(*) FROM "{schema}".notifications_message WHERE id = ANY(%s::uuid[])', [accepted]
    )
    assert stored[0][0] == len(accepted), f"{len(accepted) - stored[0][0]} sends answered 202 have no row"
