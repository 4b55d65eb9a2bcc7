"""Fixtures of the real-time tests: a second Herald process with short timeouts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import HeraldServer


@pytest.fixture(scope="session")
def quick_server(django_db_setup: None) -> Iterator[HeraldServer]:
    """A second uvicorn process on its own port: 1 s auth and 2 s idle timeouts, low frame rate, short send queue."""
    env = {
        "HERALD_WS_AUTH_TIMEOUT": "1",
        "HERALD_WS_IDLE_TIMEOUT": "2",
        "HERALD_WS_RATE": "5",
        "HERALD_WS_BURST": "20",
        "HERALD_WS_SEND_QUEUE": "200",
    }
    with HeraldServer(env=env) as server:
        yield server
