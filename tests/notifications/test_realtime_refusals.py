"""Sockets refused with the close code that says why, while other connections carry on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import timedelta

import pytest
import websockets
from django.utils import timezone
from websockets.asyncio.client import connect

from tests.conftest import ALLOWED_ORIGIN, Org
from tests.notifications.realtime_support import (
    Client,
    api_send,
    auth_frame,
    open_socket,
    run_db,
    signing_secret,
    subscribe,
    ws_url,
)
from tests.servers import HeraldServer

GLOBEX_ORIGIN = "http://app.globex.test"


async def handshake_status(url: str, origin: str | None) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(url, origin=origin, open_timeout=5)  # type: ignore[arg-type]
    return refused.value.response.status_code


async def control_still_served(server: HeraldServer, org: Org, control: Client, subscriber_id: str) -> None:
    sent = await api_send(server, org, to=[subscriber_id])
    assert (await control.recv_type("notification"))["notification"]["id"] == sent["id"]


async def test_wrong_origin_unknown_or_secret_key_and_other_paths_are_refused_before_accept(
    herald_server: HeraldServer, acme: Org, globex: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    control, _, _ = await subscribe(herald_server, acme, secret, "control")
    url = ws_url(herald_server, acme)
    assert await handshake_status(url, "http://evil.test") == 403
    assert await handshake_status(url, "https://app.acme.test") == 403  # scheme differs
    assert await handshake_status(url, "http://app.acme.test:8080") == 403  # port differs
    assert await handshake_status(ws_url(herald_server, key=acme.secret_key), "http://app.acme.test") == 403
    assert await handshake_status(ws_url(herald_server, key="pk_live_" + "A" * 28), "http://app.acme.test") == 403
    assert await handshake_status(ws_url(herald_server, key=""), "http://app.acme.test") == 403
    assert await handshake_status(f"{herald_server.ws_url}/ws/notifications/", "http://app.acme.test") == 403
    # Another organisation's publishable key, from this organisation's origin: refused before accept.
    assert await handshake_status(ws_url(herald_server, globex), "http://app.acme.test") == 403
    await control_still_served(herald_server, acme, control, "control")
    await control.close()


async def test_another_organisations_key_with_this_organisations_proof_is_refused(
    herald_server: HeraldServer, acme: Org, globex: Org
) -> None:
    acme_secret = await run_db(signing_secret, acme)
    client = await open_socket(herald_server, globex, origin="http://app.globex.test")
    await client.send(auth_frame(acme_secret, "alice"))
    assert await client.closed_with() == 4401


async def test_forged_expired_and_foreign_proofs_close_with_4401(herald_server: HeraldServer, acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    control, _, _ = await subscribe(herald_server, acme, secret, "control")
    now = timezone.now()
    frames = [
        auth_frame("whsk_forged-secret-of-the-right-length-000000", "alice"),
        auth_frame(secret, "alice", token_expires=now - timedelta(seconds=5)),
        auth_frame("whsk_forged-secret-of-the-right-length-000000", "alice", token_expires=now + timedelta(minutes=5)),
        {**auth_frame(secret, "alice"), "subscriber_id": "mallory"},
    ]
    for frame in frames:
        client = await open_socket(herald_server, acme)
        await client.send(frame)
        assert await client.closed_with() == 4401, frame
    await control_still_served(herald_server, acme, control, "control")
    await control.close()


async def test_subscriber_ids_are_never_group_names(herald_server: HeraldServer, acme: Org) -> None:
    """Ids with characters Channels refuses in group names work; malformed ids are refused with 4400."""
    secret = await run_db(signing_secret, acme)
    odd = "ü@example.com:名前 with spaces & ☃ #?%+" + "x" * 150
    client, ready, _ = await subscribe(herald_server, acme, secret, odd)
    assert ready["subscriber_id"] == odd
    sent = await api_send(herald_server, acme, to=[odd])
    assert (await client.recv_type("notification"))["notification"]["id"] == sent["id"]
    for bad in ("", "x" * 256, "line\nbreak", "a/b", 42):
        bad_client = await open_socket(herald_server, acme)
        await bad_client.send({"type": "auth", "subscriber_id": bad, "subscriber_hash": "0" * 64, "cursor": None})
        assert await bad_client.closed_with() == 4400
    await control_still_served(herald_server, acme, client, odd)
    await client.close()


async def test_flood_big_binary_and_malformed_frames(quick_server: HeraldServer, acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    control, _, _ = await subscribe(quick_server, acme, secret, "control")

    flooder, _, _ = await subscribe(quick_server, acme, secret, "flooder")
    for _ in range(200):
        try:
            await flooder.ws.send(json.dumps({"type": "ping"}))
        except websockets.ConnectionClosed:
            break
    assert await flooder.closed_with() == 4429

    big, _, _ = await subscribe(quick_server, acme, secret, "big")
    await big.ws.send(json.dumps({"type": "ping", "pad": "x" * (64 * 1024)}))
    assert await big.closed_with() == 1009

    small_enough, _, _ = await subscribe(quick_server, acme, secret, "big")
    await small_enough.ws.send(json.dumps({"type": "ping", "pad": "x" * (60 * 1024)}))
    assert (await small_enough.recv_type("pong"))["type"] == "pong"
    await small_enough.close()

    binary = await open_socket(quick_server, acme)
    await binary.ws.send(b"\x00\x01")
    assert await binary.closed_with() == 1003

    for garbage in ("not json", "[1, 2]", '{"no": "type"}', '{"type": "read", "id": "x"}'):
        early = await open_socket(quick_server, acme)
        await early.ws.send(garbage)
        assert await early.closed_with() == 4400, garbage

    await control_still_served(quick_server, acme, control, "control")
    await control.close()


async def test_no_auth_in_time_closes_4408_and_idle_sockets_close(quick_server: HeraldServer, acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    silent = await open_socket(quick_server, acme)
    started = asyncio.get_running_loop().time()
    assert await silent.closed_with(timeout=5) == 4408
    assert 0.8 < asyncio.get_running_loop().time() - started < 3

    idle, _, _ = await subscribe(quick_server, acme, secret, "idle")
    pinging, _, _ = await subscribe(quick_server, acme, secret, "pinging")
    for _ in range(5):  # 2.5 s, past the 2 s idle timeout, with a ping every 0.5 s
        await pinging.send({"type": "ping"})
        await pinging.recv_type("pong")
        await asyncio.sleep(0.5)
    assert await idle.closed_with(timeout=3) == 1001
    await pinging.send({"type": "ping"})
    assert (await pinging.recv_type("pong"))["type"] == "pong"
    await pinging.close()


async def test_token_closes_the_socket_at_exp_unless_refreshed(herald_server: HeraldServer, acme: Org) -> None:
    secret = await run_db(signing_secret, acme)
    # JWT `exp` is whole seconds: a token made to last 3 s lives 2-3 s.
    expiring = await open_socket(herald_server, acme)
    await expiring.send(auth_frame(secret, "kate", token_expires=timezone.now() + timedelta(seconds=3)))
    assert (await expiring.recv_type("ready"))["subscriber_id"] == "kate"

    refreshed = await open_socket(herald_server, acme)
    await refreshed.send(auth_frame(secret, "kate", token_expires=timezone.now() + timedelta(seconds=3)))
    await refreshed.recv_type("ready")
    # Refresh well before exp, as a client should (a busy machine must not turn this into a race).
    await refreshed.send(auth_frame(secret, "kate", token_expires=timezone.now() + timedelta(minutes=5)))

    started = asyncio.get_running_loop().time()
    assert await expiring.closed_with(timeout=6) == 4401
    assert asyncio.get_running_loop().time() - started < 3.5
    # The refreshed socket is still open and served after the first token's exp.
    sent = await api_send(herald_server, acme, to=["kate"])
    assert (await refreshed.recv_type("notification"))["notification"]["id"] == sent["id"]
    # A later auth must name the same subscriber.
    await refreshed.send(auth_frame(secret, "someone-else"))
    assert await refreshed.closed_with() == 4401


async def test_revoked_key_closes_on_reauth_with_4403(herald_server: HeraldServer, acme: Org) -> None:
    from tenants.models import ApiKey
    from tenants.services import api_key_revoke

    secret = await run_db(signing_secret, acme)
    client, _, _ = await subscribe(herald_server, acme, secret, "lena")

    def revoke() -> None:
        api_key_revoke(api_key=ApiKey.objects.get(organization=acme.organization, kind="publishable"))

    await run_db(revoke)
    # The revocation closes the socket at once (key.revoked); a re-auth racing it is refused the same way.
    with contextlib.suppress(websockets.ConnectionClosed):
        await client.send(auth_frame(secret, "lena", token_expires=timezone.now() + timedelta(minutes=5)))
    assert await client.closed_with() == 4403


def _second_publishable_key(org: Org) -> str:
    from tenants.services import api_key_create

    return api_key_create(
        organization=org.organization, kind="publishable", name="second", allowed_origins=[ALLOWED_ORIGIN]
    ).key


def _revoke(key: str) -> None:
    from tenants.keys import key_hash
    from tenants.models import ApiKey
    from tenants.services import api_key_revoke

    api_key_revoke(api_key=ApiKey.objects.get(key_hash=key_hash(key)))


async def test_revoking_a_publishable_key_closes_the_sockets_opened_with_it_and_no_others(
    herald_server: HeraldServer, acme: Org, globex: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    doomed = [(await subscribe(herald_server, acme, secret, name))[0] for name in ("doomed-1", "doomed-2")]
    kept = await open_socket(herald_server, acme, key=await run_db(_second_publishable_key, acme))
    await kept.send(auth_frame(secret, "kept"))
    await kept.recv_type("ready", 10)
    globex_secret = await run_db(signing_secret, globex)
    elsewhere, _, _ = await subscribe(herald_server, globex, globex_secret, "doomed-1", origin=GLOBEX_ORIGIN)
    await run_db(_revoke, acme.publishable_key)
    for client in doomed:
        assert await client.closed_with() == 4403
    await control_still_served(herald_server, acme, kept, "kept")
    # Another organisation's socket (same subscriber id, its own key) is untouched.
    await control_still_served(herald_server, globex, elsewhere, "doomed-1")
    await kept.close()
    await elsewhere.close()


def _roll(key: str, seconds: float) -> str:
    from tenants.keys import key_hash
    from tenants.models import ApiKey
    from tenants.services import api_key_roll

    return api_key_roll(api_key=ApiKey.objects.get(key_hash=key_hash(key)), grace=timedelta(seconds=seconds)).key


async def test_a_rolled_publishable_keys_sockets_close_when_its_grace_period_ends_and_no_others(
    herald_server: HeraldServer, acme: Org, globex: Org
) -> None:
    grace = 4.0
    secret = await run_db(signing_secret, acme)
    before_roll, _, _ = await subscribe(herald_server, acme, secret, "before-roll")
    globex_secret = await run_db(signing_secret, globex)
    elsewhere, _, _ = await subscribe(herald_server, globex, globex_secret, "elsewhere", origin=GLOBEX_ORIGIN)
    new_key = await run_db(_roll, acme.publishable_key, grace)
    rolled_at = time.monotonic()
    # Inside the grace period the old key still opens sockets, and every socket still receives.
    during_grace, _, _ = await subscribe(herald_server, acme, secret, "during-grace")
    on_new_key = await open_socket(herald_server, acme, key=new_key)
    await on_new_key.send(auth_frame(secret, "on-new-key"))
    await on_new_key.recv_type("ready", 10)
    sent = await api_send(herald_server, acme, to=["before-roll", "during-grace", "on-new-key"])
    for client in (before_roll, during_grace, on_new_key):
        assert (await client.recv_type("notification"))["notification"]["id"] == sent["id"]
    assert time.monotonic() - rolled_at < grace - 0.5, "too slow to test inside the grace period"
    # When it ends, the old key's sockets close with 4403 (not before), whenever they were opened.
    for client in (before_roll, during_grace):
        assert await client.closed_with(grace + 5) == 4403
    assert time.monotonic() - rolled_at > grace - 1.0  # Unix-time rounding on the server's side
    assert await handshake_status(ws_url(herald_server, acme), ALLOWED_ORIGIN) == 403
    await control_still_served(herald_server, acme, on_new_key, "on-new-key")
    await control_still_served(herald_server, globex, elsewhere, "elsewhere")
    await on_new_key.close()
    await elsewhere.close()


async def test_a_signing_secret_rotated_out_elsewhere_stops_opening_sockets_when_its_grace_ends(
    herald_server: HeraldServer, acme: Org
) -> None:
    """The server caches signing secrets; a rotation made in another process (this one) still applies to it: the
    new secret works at once, the old one works during its grace and not after."""
    from tenants.models import SigningSecret
    from tenants.services import signing_secret_rotate

    old = await run_db(signing_secret, acme)
    first, _, _ = await subscribe(herald_server, acme, old, "alice")  # the server now holds `old` in its cache
    await first.close()
    await run_db(signing_secret_rotate, organization=acme.organization, overlap=timedelta(minutes=5))
    new = await run_db(lambda: SigningSecret.objects.filter(organization=acme.organization).order_by("-id")[0].secret)
    for secret in (old, new):  # both live during the grace
        client, ready, _ = await subscribe(herald_server, acme, secret, "alice")
        assert ready["subscriber_id"] == "alice"
        await client.close()
    await run_db(
        lambda: SigningSecret.objects.filter(organization=acme.organization, secret=old).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    )
    refused = await open_socket(herald_server, acme)
    await refused.send(auth_frame(old, "alice"))
    assert await refused.closed_with() == 4401
    refused = await open_socket(herald_server, acme)
    await refused.send(auth_frame(old, "bob"))  # nor does it create a subscriber
    assert await refused.closed_with() == 4401
    client, _, _ = await subscribe(herald_server, acme, new, "alice")
    await client.close()
    from notifications.models import Subscriber

    def subscriber_ids() -> list[str]:
        with acme.activate():
            return list(Subscriber.objects.values_list("external_id", flat=True))

    assert await run_db(subscriber_ids) == ["alice"]
