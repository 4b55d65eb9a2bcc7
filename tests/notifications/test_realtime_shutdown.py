"""Graceful shutdown: SIGTERM stops accepting and closes every socket with 1012."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.conftest import Org
from tests.notifications.realtime_support import open_socket, run_db, signing_secret, subscribe
from tests.servers import HeraldServer


async def test_sigterm_closes_sockets_with_1012_and_stops_accepting(acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    server = await asyncio.to_thread(HeraldServer().start)
    try:
        ready_socket, _, _ = await subscribe(server, acme, secret, "mia")
        unauthenticated = await open_socket(server, acme)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert await ready_socket.closed_with(timeout=10) == 1012
        assert await unauthenticated.closed_with(timeout=10) == 1012
        with pytest.raises(OSError):
            await open_socket(server, acme)
        # It exits on its own once the sockets are closed (uvicorn re-raises SIGTERM after its graceful shutdown).
        assert await asyncio.to_thread(server.process.wait, 15) in (0, -signal.SIGTERM)
    finally:
        await asyncio.to_thread(server.stop)
