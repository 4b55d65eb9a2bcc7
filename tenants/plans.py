"""What tenants needs of an organisation's plan: the API rate its keys get.

Plans are billing's (billing builds on tenants, so tenants cannot import it):
billing registers the provider in its AppConfig.ready, and the rate limiter
asks through `plan_rate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class PlanRate:
    """A key's token bucket: sustained requests per second and burst size."""

    rate_per_second: float
    burst: int


_provider: Callable[[str], PlanRate] | None = None


def plan_rate_provider_register(provider: Callable[[str], PlanRate]) -> None:
    """Name the function that gives a plan code's rate (billing registers its plans here)."""
    global _provider
    _provider = provider


def plan_rate(plan: str) -> PlanRate:
    """The API rate of the plan with code `plan`, from the registered provider."""
    if _provider is None:
        raise ImproperlyConfigured("no plan rate provider is registered: is `billing` in INSTALLED_APPS?")
    return _provider(plan)
