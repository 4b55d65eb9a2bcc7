"""Each reach of herald.compat into a library's private parts still finds what it relies on and behaves as relied
upon, against the installed library: an upgrade that breaks one fails here, by name."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import threading
import uuid
import weakref
from typing import Any

import pytest
import redis
import uvicorn
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.core.cache import cache
from django_tenants.utils import schema_context
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from herald import compat
from tenants.resolve import ResolvedKey
from tests.conftest import Org

# --- uvicorn's websockets-sansio protocol ------------------------------------------------------------------------


async def _serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, ws="websockets-sansio", lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, port


async def test_uvicorn_sansio_protocol_takes_direct_frame_writes_forgets_its_handshake_and_aborts() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        protocol = compat.sansio_protocol(send)
        seen["protocol"] = protocol is not None
        if protocol is None:
            return
        seen["handshake_kept"] = protocol.request is not None and protocol.response is not None
        compat.sansio_handshake_forget(send)
        seen["handshake_freed"] = protocol.request is None and protocol.response is None
        seen["writable_is_event"] = isinstance(protocol.writable, asyncio.Event)
        protocol.writable.clear()
        seen["busy"] = compat.sansio_write(protocol, b"never written")
        protocol.writable.set()
        seen["written"] = compat.sansio_write(protocol, Frame(Opcode.TEXT, b"direct").serialize(mask=False))
        await receive()  # the client's "go": drop it without a closing handshake
        seen["aborted"] = compat.asgi_transport_abort(send)

    server, task, port = await _serve(app)
    try:
        async with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as client:
            assert await asyncio.wait_for(client.recv(), 5) == "direct"
            await client.send("go")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 5)
            assert closed.value.rcvd is None  # no close frame: the transport was aborted
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
    assert seen == {
        "protocol": True,
        "handshake_kept": True,
        "handshake_freed": True,
        "writable_is_event": True,
        "busy": "busy",
        "written": "written",
        "aborted": True,
    }


@pytest.mark.parametrize("release", [True, False])
async def test_a_closed_sansio_connection_is_freed_at_once_only_once_its_parser_is_ended(release: bool) -> None:
    # websockets' parser generator keeps the connection in a reference cycle: without sansio_release it waits
    # for the collector (the contrast case, which proves the cycle is still there to break).
    refs: list[weakref.ref[Any]] = []
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        seen["while_open"] = compat.sansio_release(send)  # the transport still reads: left alone
        refs.append(weakref.ref(send.__self__.conn))
        while (await receive())["type"] != "websocket.disconnect":
            pass
        if release:
            seen["released"] = compat.sansio_release(send)

    gc.disable()
    try:
        server, task, port = await _serve(app)
        try:
            async with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as client:
                await client.send("hello")
            for _ in range(200):
                if refs and refs[0]() is None:
                    break
                await asyncio.sleep(0.02)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
        assert seen["while_open"] is False
        assert refs and (refs[0]() is None) is release
        assert seen.get("released", True) is True
    finally:
        gc.enable()
        gc.collect()


def test_a_send_that_is_not_uvicorns_sansio_protocol_is_left_alone() -> None:
    async def send(message: Any) -> None:
        pass

    assert compat.sansio_protocol(send) is None
    assert compat.asgi_transport_abort(send) is False
    compat.sansio_handshake_forget(send)  # nothing to free, nothing raised
    assert compat.sansio_release(send) is False


# --- asyncio ---------------------------------------------------------------------------------------------------


async def test_a_future_yielded_to_a_hand_driven_send_can_be_awaited_once_unblocked() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def waits() -> int:
        return await future

    step = waits()
    yielded = step.send(None)
    assert yielded is future and future._asyncio_future_blocking is True
    compat.future_unblock(yielded)
    assert future._asyncio_future_blocking is False
    waiter = asyncio.ensure_future(asyncio.wait_for(asyncio.shield(yielded), 5))
    future.set_result(7)
    assert await waiter == 7
    with pytest.raises(StopIteration) as done:
        step.send(None)
    assert done.value.value == 7


# --- asgiref -----------------------------------------------------------------------------------------------------


async def test_asgiref_tells_the_thread_sync_to_async_runs_for_a_loop_from_a_plain_thread() -> None:
    assert await sync_to_async(compat.asgiref_runs_for_a_loop)() is True
    assert await sync_to_async(compat.asgiref_runs_for_a_loop, thread_sensitive=False)() is True
    plain: list[bool] = []
    thread = threading.Thread(target=lambda: plain.append(compat.asgiref_runs_for_a_loop()))
    thread.start()
    thread.join(5)
    assert plain == [False]


# --- channels-redis ----------------------------------------------------------------------------------------------


async def test_pipelined_publish_reaches_pubsub_group_members_as_group_send_would() -> None:
    layer = RedisPubSubChannelLayer(hosts=[settings.REDIS_URL])
    groups = [f"compat-{uuid.uuid4().hex[:12]}.{n}" for n in range(3)]
    channel = await layer.new_channel()
    try:
        for group in groups:
            await layer.group_add(group, channel)
        events = [(group, {"type": "probe.event", "group": group, "n": n}) for n, group in enumerate(groups)]
        assert await compat.pubsub_publish_pipelined(layer, events) is True
        received = [await asyncio.wait_for(layer.receive(channel), 5) for _ in groups]
        assert sorted(received, key=lambda e: e["n"]) == [event for _, event in events]
    finally:
        for group in groups:
            await layer.group_discard(group, channel)
        await layer.flush()


async def test_pipelined_publish_declines_a_layer_it_does_not_know() -> None:
    assert await compat.pubsub_publish_pipelined(InMemoryChannelLayer(), [("g", {"type": "x"})]) is False


# --- Django's Redis cache with django-tenants' keys -------------------------------------------------------------


def test_the_cache_entry_of_a_key_is_found_and_decoded_from_redis_directly() -> None:
    resolved = ResolvedKey(
        api_key_id=1,
        kind="secret",
        key_hash="ab" * 32,
        organization_id=2,
        schema_name="t_probe",
        plan="free",
        allowed_origins=("http://a.test",),
        expires_at=None,
    )
    name, number = f"compat-probe:{uuid.uuid4().hex}", f"compat-count:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        with schema_context("public"):
            assert cache.make_key(name) == compat.tenant_cache_key(name, schema_name="public")
            cache.set(name, resolved, 30)
            cache.set(number, 42, 30)
        raw = client.get(compat.tenant_cache_key(name, schema_name="public"))
        assert raw is not None and compat.cache_value_decode(raw) == resolved
        raw_number = client.get(compat.tenant_cache_key(number, schema_name="public"))
        assert raw_number is not None and compat.cache_value_decode(raw_number) == 42
    finally:
        with schema_context("public"):
            cache.delete_many([name, number])
        client.close()


# --- Django's BaseHandler -----------------------------------------------------------------------------------------


async def test_a_handler_with_an_installed_chain_runs_that_middleware_and_no_other() -> None:
    from asgiref.testing import ApplicationCommunicator
    from django.core.handlers.asgi import ASGIHandler

    calls: list[str] = []

    def middleware(get_response: Any) -> Any:
        async def run(request: Any) -> Any:
            calls.append(request.path)
            response = await get_response(request)
            response["X-Probe"] = "installed"
            return response

        return run

    class Handler(ASGIHandler):
        def load_middleware(self, is_async: bool = False) -> None:
            compat.django_handler_chain_install(self, middleware)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/no-such-page-for-the-compat-probe",
        "raw_path": b"/no-such-page-for-the-compat-probe",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    communicator = ApplicationCommunicator(Handler(), scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(10)
    await communicator.receive_output(10)
    await communicator.wait(10)
    headers = dict(start["headers"])
    assert start["status"] == 404 and headers[b"X-Probe"] == b"installed"
    assert calls == ["/no-such-page-for-the-compat-probe"]
    # Django's own MIDDLEWARE did not run: CommonMiddleware/SecurityMiddleware would have added these.
    assert b"Cross-Origin-Opener-Policy" not in headers and b"X-Frame-Options" not in headers


# --- django-ninja ------------------------------------------------------------------------------------------------


def test_a_method_no_route_serves_is_answered_by_the_installed_handler(client: Any, acme: Org) -> None:
    from ninja.operation import PathView

    from herald.v1 import _method_not_allowed

    assert PathView._not_allowed is _method_not_allowed  # type: ignore[comparison-overlap]
    response = client.patch("/v1/usage", HTTP_AUTHORIZATION=f"Bearer {acme.secret_key}")
    assert response.status_code == 405 and response["Content-Type"] == "application/problem+json"
    assert response["Allow"] == "GET"


# --- pgserver ----------------------------------------------------------------------------------------------------


def test_pgserver_bundles_the_pg_dump_provisioning_replays_with() -> None:
    folder = compat.pgserver_bin_dir()
    assert folder is not None and (folder / "pg_dump").exists()
    version = subprocess.run([str(folder / "pg_dump"), "--version"], capture_output=True, text=True, check=True)
    assert "PostgreSQL" in version.stdout and " 16." in version.stdout
