"""GET /v1/usage: the plan, its limits, this month's counts and the daily breakdown; only the key's own
organisation; bad input answered with problems."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from billing.plans import plan_for
from billing.usage import month_start, period_resets_at
from tests.billing.support import messages_insert, problem, send
from tests.conftest import Org
from tests.servers import HeraldServer


def _get(server: HeraldServer, path: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(server.url + path, headers=headers, timeout=20)


def test_usage_names_the_plan_its_limits_and_this_months_counts(acme: Org, herald_server: HeraldServer) -> None:
    messages_insert(acme, 7)
    assert send(herald_server, acme, "one", to=["a", "b"]).status_code == 202
    body = _get(herald_server, "/v1/usage", acme.secret_key).json()
    today = datetime.now(tz=UTC).date()
    free = plan_for("free")
    assert body["plan"] == {"code": "free", "name": "Free", "limits": free.limits()}
    assert body["plan"]["limits"]["card_required"] is False and body["plan"]["limits"]["overage"] is False
    period = body["period"]
    assert period["start"] == month_start(today).isoformat() and period["end"] == today.isoformat()
    assert datetime.fromisoformat(period["resets_at"]) == period_resets_at(today)
    assert (period["messages"], period["notifications"], period["overage"], period["test"]) == (8, 2, 0, False)
    assert len(body["days"]) == 30 and body["days"][-1]["date"] == today.isoformat()
    assert {k: body["days"][-1][k] for k in ("messages", "notifications")} == {"messages": 8, "notifications": 2}


def test_another_organisation_sees_none_of_acmes_usage(acme: Org, globex: Org, herald_server: HeraldServer) -> None:
    messages_insert(acme, 5)
    assert send(herald_server, acme, "acme's", to=["a", "b", "c"]).status_code == 202
    body = _get(herald_server, "/v1/usage", globex.secret_key).json()
    assert body["period"]["messages"] == 0 and body["period"]["notifications"] == 0
    assert all(d["messages"] == 0 and d["notifications"] == 0 for d in body["days"])
    # No way to name another organisation: unknown parameters are refused, not ignored.
    other = _get(herald_server, f"/v1/usage?org={acme.organization.slug}", globex.secret_key)
    assert other.status_code == 422
    problem(other, "validation-error")


def test_bad_usage_requests_are_problems(acme: Org, herald_server: HeraldServer) -> None:
    today = datetime.now(tz=UTC).date()
    cases = [
        (f"/v1/usage?from={today}&to={today - timedelta(days=1)}", acme.secret_key, 422, "validation-error"),
        (f"/v1/usage?from={today - timedelta(days=400)}&to={today}", acme.secret_key, 422, "validation-error"),
        ("/v1/usage?from=last-week", acme.secret_key, 422, "validation-error"),
        ("/v1/usage?to=0", acme.secret_key, 422, "validation-error"),  # a Unix time is not a day
        ("/v1/usage?from=1700000000", acme.secret_key, 422, "validation-error"),
        ("/v1/usage?to=2026-1-5", acme.secret_key, 422, "validation-error"),
        ("/v1/usage", acme.publishable_key, 401, "publishable-key-not-allowed"),
        ("/v1/usage", acme.secret_key[:-2] + "zz", 401, "invalid-api-key"),
        ("/v1/usage", None, 401, "authentication-required"),
    ]
    for path, key, status, slug in cases:
        response = _get(herald_server, path, key)
        assert response.status_code == status, (path, response.text)
        problem(response, slug)
    post = httpx.post(
        herald_server.url + "/v1/usage", headers={"Authorization": f"Bearer {acme.secret_key}"}, timeout=20
    )
    assert post.status_code == 405
    problem(post, "method-not-allowed")
