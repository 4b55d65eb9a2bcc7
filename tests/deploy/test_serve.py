"""`herald serve`: workers from WEB_CONCURRENCY, no access log, drain on SIGTERM, trusted proxies only."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import httpx
import psutil
import pytest

from tests.conftest import Org
from tests.deploy.support import ServeProcess
from tests.notifications.realtime_support import open_socket, run_db, signing_secret, subscribe


def worker_processes(server: ServeProcess) -> list[psutil.Process]:
    assert server.process is not None
    return [
        child
        for child in psutil.Process(server.process.pid).children()
        if "multiprocessing" in " ".join(child.cmdline()) and "spawn_main" in " ".join(child.cmdline())
    ]


async def test_workers_come_from_web_concurrency_and_sigterm_drains_them(acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    server = ServeProcess(env={"WEB_CONCURRENCY": "2", "HERALD_DRAIN_SECONDS": "5"})
    await asyncio.to_thread(server.start)
    try:
        assert len(worker_processes(server)) == 2
        # Enough sockets that both workers hold some (the kernel spreads accepts over them).
        clients = [(await subscribe(server, acme, secret, f"u{i}"))[0] for i in range(8)]
        pending = await open_socket(server, acme)  # accepted, never authenticated
        assert server.process is not None
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(c.closed_with(timeout=15) for c in [*clients, pending]))
        assert codes == [1012] * 9
        # Within the drain (5 s), plus slack for a loaded 2-core machine.
        assert time.monotonic() - started < 5 + 5
        assert await asyncio.to_thread(server.process.wait, 30) in (0, 128 + signal.SIGTERM, -signal.SIGTERM)
    finally:
        await asyncio.to_thread(server.stop)


def test_no_access_log() -> None:
    with ServeProcess(env={"LOG_LEVEL": "WARNING"}) as server:
        for _ in range(3):
            assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.get(server.url + "/nowhere").status_code == 404
        server.stop()
        output = server.full_output()
    assert "/healthz" not in output
    assert "/nowhere" not in output


@pytest.mark.parametrize(
    ("allowed", "client"),
    [
        (None, "203.0.113.7"),  # the default trusts the local proxy (127.0.0.1)
        ("192.0.2.1", "127.0.0.1"),  # X-Forwarded-For from anyone else is ignored
    ],
)
def test_forwarded_for_is_trusted_only_from_forwarded_allow_ips(allowed: str | None, client: str) -> None:
    env = {"LOG_LEVEL": "INFO", "HERALD_LOG_FORMAT": "json"}
    if allowed:
        env["FORWARDED_ALLOW_IPS"] = allowed
    with ServeProcess(env=env) as server:
        response = httpx.get(server.url + "/v1/openapi.json", headers={"X-Forwarded-For": "203.0.113.7"})
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        server.stop()
    lines = [line for line in server.json_lines() if line.get("request_id") == request_id]
    assert len(lines) == 1, server.full_output()
    assert lines[0]["client"] == client
    # Probes are answered without a log line each (kubelets call them every few seconds).
    assert not [line for line in server.json_lines() if line.get("route") == "/healthz"]


def test_probes_answer_whatever_the_host_header() -> None:
    """Kubelets and Docker's HEALTHCHECK call the pod's IP, which ALLOWED_HOSTS does not list."""
    from tests.deploy.support import production_env
    from tests.servers import test_database_url

    env = production_env(ALLOWED_HOSTS="herald.example.com", DATABASE_URL=test_database_url())
    with ServeProcess(env=env) as server:
        headers = {"Host": "10.1.2.3:8000"}
        assert httpx.get(server.url + "/healthz", headers=headers).json() == {"status": "ok"}
        ready = httpx.get(server.url + "/readyz", headers=headers)
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        assert "herald_notifications_accepted_total" in httpx.get(server.url + "/metrics", headers=headers).text
        # Everything else still checks the host.
        assert httpx.get(server.url + "/v1/openapi.json", headers=headers).status_code == 400
        assert httpx.get(server.url + "/v1/openapi.json", headers={"Host": "herald.example.com"}).status_code == 200


def _healthz(conn: socket.socket) -> bytes:
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while b'"ok"' not in answer:
        chunk = conn.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def _closed_by_server(conn: socket.socket) -> bool:
    conn.setblocking(False)
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    finally:
        conn.setblocking(True)


def test_idle_keep_alive_connections_outlive_client_pools_idle_expiry() -> None:
    """uvicorn's 5 s keep-alive equals httpx's pool expiry: a POST on a pooled connection the server was closing
    got no answer (the soak's ReadErrors). Herald keeps idle connections 75 s (HERALD_KEEP_ALIVE_SECONDS)."""
    with ServeProcess(env={"HERALD_KEEP_ALIVE_SECONDS": "1"}) as short, ServeProcess() as default:
        connections = {}
        for name, server in (("short", short), ("default", default)):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            assert b"200 OK" in _healthz(conn), name
            connections[name] = conn
        time.sleep(6.5)  # past uvicorn's 5 s and httpx's 5 s pool expiry
        assert _closed_by_server(connections["short"])  # the setting is what decides
        assert not _closed_by_server(connections["default"])
        assert b"200 OK" in _healthz(connections["default"])  # the same connection serves the next request
        for conn in connections.values():
            conn.close()
