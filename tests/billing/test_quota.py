"""The monthly notification quota in the send engine: Free stops at its limit with `quota-exceeded` and writes
nothing of the refused send; a batch that would cross the line is refused whole; another organisation never
feels it; a plan change lifts it at once; the counter is a cache of the message rows (cleared, it is rebuilt
from them)."""

from __future__ import annotations

from datetime import UTC, datetime

from billing.plans import plan_for
from billing.usage import period_resets_at
from tenants.services import organization_plan_change
from tests.billing.support import (
    messages_insert,
    messages_titled,
    problem,
    quota_counter_forget,
    send,
    send_batch,
)
from tests.conftest import Org
from tests.servers import HeraldServer

FREE_LIMIT = plan_for("free").monthly_notifications
assert FREE_LIMIT is not None


def test_the_send_that_crosses_the_free_quota_is_refused_and_writes_nothing(
    acme: Org, globex: Org, herald_server: HeraldServer
) -> None:
    messages_insert(acme, FREE_LIMIT - 2)  # this month's sends so far, as rows
    # A batch of 3 would cross the line: refused whole, nothing of it written.
    refused = send_batch(herald_server, acme, ["batch-1", "batch-2", "batch-3"])
    assert refused.status_code == 429, refused.text
    body = problem(refused, "quota-exceeded")
    resets_at = period_resets_at(datetime.now(tz=UTC).date())
    assert body["limit"] == FREE_LIMIT and body["limit_name"] == "monthly_notifications"
    assert body["used"] == FREE_LIMIT - 2 and body["plan"] == "free"
    assert body["resets_at"] == resets_at.isoformat().replace("+00:00", "Z")
    assert f"{FREE_LIMIT:,} notifications a month" in body["detail"] and "batch of 3" in body["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 31 * 86400
    for title in ("batch-1", "batch-2", "batch-3"):
        assert messages_titled(acme, title) == (0, 0)
    # The last two fit, one by one (a batch of 2 would have too).
    assert send(herald_server, acme, "last-1").status_code == 202
    assert send(herald_server, acme, "last-2").status_code == 202
    over = send(herald_server, acme, "one too many")
    assert over.status_code == 429 and problem(over, "quota-exceeded")["used"] == FREE_LIMIT
    assert messages_titled(acme, "one too many") == (0, 0)
    assert messages_titled(acme, "last-2") == (1, 1)
    # Another organisation on the same plan and server sends on.
    other = send(herald_server, globex, "globex is fine")
    assert other.status_code == 202, other.text
    # The Redis counter is a cache: cleared, it is rebuilt from the rows and the quota still holds.
    quota_counter_forget(acme)
    assert send(herald_server, acme, "after the flush").status_code == 429
    assert messages_titled(acme, "after the flush") == (0, 0)


def test_a_plan_change_lifts_the_limit_at_once_and_counts_the_overage(acme: Org, herald_server: HeraldServer) -> None:
    messages_insert(acme, FREE_LIMIT)
    assert send(herald_server, acme, "refused").status_code == 429
    organization_plan_change(organization=acme.organization, plan="pro")
    accepted = send(herald_server, acme, "on pro")
    assert accepted.status_code == 202, accepted.text
    assert messages_titled(acme, "on pro") == (1, 1)
    usage = herald_server_usage(herald_server, acme)
    assert usage["plan"]["code"] == "pro" and usage["plan"]["limits"]["overage"] is True
    assert usage["period"]["messages"] == FREE_LIMIT + 1
    assert usage["period"]["overage"] == 0  # Pro's quota is far away
    # Back on Free: the stop applies again at once.
    organization_plan_change(organization=acme.organization, plan="free")
    assert send(herald_server, acme, "free again").status_code == 429


def herald_server_usage(server: HeraldServer, org: Org) -> dict[str, object]:
    import httpx

    response = httpx.get(server.url + "/v1/usage", headers={"Authorization": f"Bearer {org.secret_key}"}, timeout=20)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_with_redis_down_the_quota_holds_and_sending_goes_on(acme: Org, globex: Org) -> None:
    from tests.reliability.redis_support import KillableRedis

    redis = KillableRedis().start()
    try:
        with HeraldServer(env={"REDIS_URL": redis.url, "LOG_LEVEL": "ERROR"}) as server:
            messages_insert(acme, FREE_LIMIT - 1)
            redis.kill()
            assert send(server, globex, "globex without redis").status_code == 202
            assert send(server, acme, "the last one").status_code == 202
            over = send(server, acme, "over without redis")
            assert over.status_code == 429, over.text
            problem(over, "quota-exceeded")
            assert messages_titled(acme, "over without redis") == (0, 0)
            assert send(server, globex, "globex still fine").status_code == 202
    finally:
        redis.stop()


def test_two_processes_together_stop_exactly_at_the_line(acme: Org) -> None:
    import asyncio

    import httpx

    from notifications.models import Message

    messages_insert(acme, FREE_LIMIT - 20)

    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:

            async def one(i: int) -> int:
                response = await client.post(
                    "/v1/notifications",
                    json={"to": ["ada"], "title": f"burst-{i}"},
                    headers={"Authorization": f"Bearer {acme.secret_key}"},
                )
                return response.status_code

            return list(await asyncio.gather(*(one(i) for i in range(50))))

    with HeraldServer(workers=2) as server:
        codes = asyncio.run(burst(server.url))
    assert sorted(set(codes)) == [202, 429], codes
    assert codes.count(202) == 20
    with acme.activate():
        assert Message.objects.count() == FREE_LIMIT


def test_an_idempotent_replay_is_answered_over_the_quota_and_not_counted(
    acme: Org, herald_server: HeraldServer
) -> None:
    import httpx

    messages_insert(acme, FREE_LIMIT - 1)
    headers = {"Authorization": f"Bearer {acme.secret_key}", "Idempotency-Key": "the-last-one"}
    body = {"to": ["ada"], "title": "the last one"}
    first = httpx.post(herald_server.url + "/v1/notifications", json=body, headers=headers, timeout=20)
    assert first.status_code == 202, first.text
    replay = httpx.post(herald_server.url + "/v1/notifications", json=body, headers=headers, timeout=20)
    assert replay.status_code == 202 and replay.json() == first.json()
    assert messages_titled(acme, "the last one") == (1, 1)
    assert send(herald_server, acme, "a new one").status_code == 429
