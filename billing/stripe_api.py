"""Herald's one way to Stripe: a client on the configured key, API base and pinned API version; prices and plans."""

from __future__ import annotations

from functools import lru_cache

import stripe
from django.conf import settings

# What a webhook endpoint must be created to send (and all this module's reads understand).
HANDLED_EVENT_TYPES = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    }
)

# A subscription in these states keeps its plan (past_due: Stripe is still retrying the card).
LIVE_SUBSCRIPTION_STATUSES = frozenset({"active", "trialing", "past_due"})


class BillingNotConfiguredError(Exception):
    """STRIPE_SECRET_KEY (or the prices) are not set: billing pages say so, nothing calls Stripe."""


def billing_configured() -> bool:
    """Whether Herald may call Stripe (a secret key is set)."""
    return bool(settings.STRIPE_SECRET_KEY)


def webhook_configured() -> bool:
    """Whether the webhook can verify signatures (a webhook secret is set)."""
    return bool(settings.STRIPE_WEBHOOK_SECRET)


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str, api_version: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key, stripe_version=api_version, base_addresses={"api": api_base}, max_network_retries=2
    )


def stripe_client() -> stripe.StripeClient:
    """The Stripe client on the configured key, API base and pinned API version."""
    if not billing_configured():
        raise BillingNotConfiguredError("STRIPE_SECRET_KEY is not set")
    api_base = str(settings.STRIPE_API_BASE or "https://api.stripe.com").rstrip("/")
    return _client(settings.STRIPE_SECRET_KEY, api_base, settings.STRIPE_API_VERSION)


def plan_prices() -> dict[str, str]:
    """Plan code -> Stripe Price id, for the paid plans that have a price configured."""
    prices = {"pro": settings.STRIPE_PRICE_PRO, "scale": settings.STRIPE_PRICE_SCALE}
    return {plan: price for plan, price in prices.items() if price}


def plan_for_price(price_id: str) -> str | None:
    """The plan a Price buys, or None for a price that is no plan's (the overage price, a stranger's)."""
    for plan, price in plan_prices().items():
        if price == price_id:
            return plan
    return None
