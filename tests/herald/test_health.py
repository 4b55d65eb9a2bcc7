"""/healthz and /readyz through a real server."""

from __future__ import annotations

import httpx

from tests.servers import HeraldServer, PrivateRedis


def test_healthz_answers_ok(herald_server: HeraldServer) -> None:
    response = httpx.get(herald_server.url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_database_and_redis_answer(herald_server: HeraldServer) -> None:
    response = httpx.get(herald_server.url + "/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_reports_a_stopped_redis_as_503() -> None:
    redis = PrivateRedis()
    try:
        with HeraldServer(env={"REDIS_URL": redis.url}) as server:
            assert httpx.get(server.url + "/readyz").status_code == 200
            redis.stop()
            response = httpx.get(server.url + "/readyz", timeout=10)
            assert response.status_code == 503
            body = response.json()
            assert body["down"] == ["redis"]
            assert body["checks"]["database"] == "ok"
            assert httpx.get(server.url + "/healthz").status_code == 200  # alive, just not ready
    finally:
        redis.stop()


def test_readyz_reports_an_unreachable_database_as_503(unused_tcp_port: int) -> None:
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{unused_tcp_port}/nothing"}
    with HeraldServer(env=env) as server:
        response = httpx.get(server.url + "/readyz", timeout=10)
        assert response.status_code == 503
        assert response.json()["down"] == ["database"]
