"""An erased subscriber's open sockets close at once (4401), so they cannot keep streaming the organisation's
broadcasts and topic messages to someone who no longer exists there (found by the isolation state machine)."""

from __future__ import annotations

import httpx

from tests.conftest import Org
from tests.notifications.realtime_support import api_send, run_db, signing_secret, subscribe
from tests.servers import HeraldServer


async def test_erasing_a_subscriber_closes_its_sockets_and_they_get_no_later_broadcast(
    herald_server: HeraldServer, acme: Org, globex: Org
) -> None:
    secret = await run_db(signing_secret, acme)
    erased, _, _ = await subscribe(herald_server, acme, secret, "leaver")
    stays, _, _ = await subscribe(herald_server, acme, secret, "stayer")
    globex_secret = await run_db(signing_secret, globex)
    other_org, _, _ = await subscribe(herald_server, globex, globex_secret, "leaver", origin="http://app.globex.test")
    async with httpx.AsyncClient(base_url=herald_server.url, timeout=10) as http:
        answer = await http.delete("/v1/subscribers/leaver", headers={"Authorization": f"Bearer {acme.secret_key}"})
    assert answer.status_code == 204
    assert await erased.closed_with(5) == 4401
    assert erased.ws.close_reason == "subscriber erased"
    sent = await api_send(herald_server, acme, broadcast=True)
    frame = await stays.recv_type("notification")
    assert frame["notification"]["id"] == sent["id"]
    # The other organisation's subscriber of the same id is untouched.
    assert await other_org.nothing_within(0.3)
    await stays.close()
    await other_org.close()
