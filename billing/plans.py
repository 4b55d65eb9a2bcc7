"""Plans and the limits they set. tenants reads their API rates through `plan_rate` (registered in BillingConfig)."""

from __future__ import annotations

from dataclasses import dataclass

from tenants.plans import PlanRate


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    # Token bucket per API key: sustained requests per second and burst size.
    rate_per_second: float
    burst: int
    monthly_notifications: int | None
    # Messages older than this are deleted by the retention job; a cursor older than what is left gets `reset`.
    retention_days: int = 7


PLANS: dict[str, Plan] = {
    plan.code: plan
    for plan in (
        Plan("free", "Free", rate_per_second=50, burst=100, monthly_notifications=10_000, retention_days=7),
        Plan("pro", "Pro", rate_per_second=500, burst=1_000, monthly_notifications=1_000_000, retention_days=90),
        Plan(
            "enterprise",
            "Enterprise",
            rate_per_second=5_000,
            burst=10_000,
            monthly_notifications=None,
            retention_days=365,
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
