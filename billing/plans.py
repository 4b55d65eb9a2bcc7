"""Plans and every limit they set, in one place. tenants reads their API rates through `plan_rate`
(registered in BillingConfig); everything else reads `plan_for(code)`.

A limit of None means unlimited. A notification is one accepted send (one message, one item of a batch),
whatever its number of recipients. Free is a hard stop at its monthly notifications; paid plans may go
over (`overage`), and what goes over is billed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tenants.plans import PlanRate


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    # Token bucket per API key: sustained requests per second and burst size.
    rate_per_second: float
    burst: int
    monthly_notifications: int | None
    monthly_active_subscribers: int | None
    concurrent_connections: int | None
    retention_days: int
    members: int | None
    # Over monthly_notifications: refused (False) or accepted and billed as overage (True).
    overage: bool
    card_required: bool

    def limits(self) -> dict[str, Any]:
        """The plan's limits as plain data (the API's and the portal's `limits`)."""
        data = asdict(self)
        for name in ("code", "name"):
            data.pop(name)
        return data


PLANS: dict[str, Plan] = {
    plan.code: plan
    for plan in (
        Plan(
            "free",
            "Free",
            rate_per_second=50,
            burst=100,
            monthly_notifications=10_000,
            monthly_active_subscribers=1_000,
            concurrent_connections=100,
            retention_days=7,
            members=3,
            overage=False,
            card_required=False,
        ),
        Plan(
            "pro",
            "Pro",
            rate_per_second=500,
            burst=1_000,
            monthly_notifications=1_000_000,
            monthly_active_subscribers=50_000,
            concurrent_connections=5_000,
            retention_days=30,
            members=20,
            overage=True,
            card_required=True,
        ),
        Plan(
            "scale",
            "Scale",
            rate_per_second=5_000,
            burst=10_000,
            monthly_notifications=10_000_000,
            monthly_active_subscribers=500_000,
            concurrent_connections=50_000,
            retention_days=90,
            members=100,
            overage=True,
            card_required=True,
        ),
        Plan(
            "enterprise",
            "Enterprise",
            rate_per_second=5_000,
            burst=10_000,
            monthly_notifications=None,
            monthly_active_subscribers=None,
            concurrent_connections=None,
            retention_days=365,
            members=None,
            overage=True,
            card_required=False,  # a contract, invoiced
        ),
    )
}


def plan_for(code: str) -> Plan:
    """The plan with `code`, falling back to Free for an unknown code."""
    return PLANS.get(code, PLANS["free"])


def plan_rate(code: str) -> PlanRate:
    """The API rate of the plan with `code` (Free for an unknown code), as tenants' rate limiter takes it."""
    plan = plan_for(code)
    return PlanRate(rate_per_second=plan.rate_per_second, burst=plan.burst)
