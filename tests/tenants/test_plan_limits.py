"""Rate limits follow the organisation's plan (billing.plans): the RateLimit headers say which."""

from __future__ import annotations

import math

import httpx
import pytest

from billing.plans import plan_for
from tenants.keys import key_hash
from tenants.resolve import api_key_cache_forget
from tests.conftest import Org
from tests.notifications.api_support import server_api, widget_api
from tests.servers import HeraldServer


def test_free_and_pro_have_different_limits() -> None:
    """Otherwise the test below could not tell one plan from the other."""
    free, pro = plan_for("free"), plan_for("pro")
    assert (free.burst, free.rate_per_second) == (100, 50)
    assert (pro.burst, pro.rate_per_second) == (1_000, 500)


@pytest.mark.parametrize(("plan", "policy"), [("free", "100;w=2"), ("pro", "1000;w=2")])
def test_ratelimit_policy_follows_the_organisations_plan(
    acme: Org, herald_server: HeraldServer, plan: str, policy: str
) -> None:
    organization = acme.organization
    api = server_api(acme)
    assert api.get("/v1/subscribers").status_code == 200  # both keys resolved and cached under the Free plan
    assert widget_api(acme, "ada").get("/v1/inbox/unread-count").status_code == 200
    organization.plan = plan
    organization.save(update_fields=["plan"])
    # The resolved key (plan included) is cached for a minute: forget it so the new plan applies now.
    api_key_cache_forget(key_hash(acme.secret_key))
    api_key_cache_forget(key_hash(acme.publishable_key))

    limits = plan_for(plan)
    # Burst, and the seconds an empty bucket takes to refill.
    assert policy == f"{limits.burst};w={math.ceil(limits.burst / limits.rate_per_second)}"
    django_view = api.get("/v1/subscribers")
    widget = widget_api(acme, "ada").get("/v1/inbox/unread-count")
    for response in (django_view, widget):
        assert response.status_code == 200, response.content
        assert response["RateLimit-Policy"] == policy
        assert response["RateLimit"].startswith(f"limit={limits.burst}, remaining=")
    # The server's lean send path takes its token on the event loop: the same policy.
    lean = httpx.post(
        herald_server.url + "/v1/notifications",
        json={"to": ["ada"], "title": "x"},
        headers={"Authorization": f"Bearer {acme.secret_key}"},
        timeout=20,
    )
    assert lean.status_code == 202, lean.text
    assert lean.headers["RateLimit-Policy"] == policy
    assert lean.headers["RateLimit"].startswith(f"limit={limits.burst}, remaining=")
