"""Writes of billing: the organisation's Stripe customer, Checkout and Customer Portal sessions, webhook events."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import StripeCustomer, StripeEvent
from billing.stripe_api import LIVE_SUBSCRIPTION_STATUSES, plan_for_price, plan_prices, stripe_client
from tenants.models import Organization
from tenants.services import organization_plan_change

logger = logging.getLogger(__name__)

# How long a past-due subscription keeps its plan while Stripe retries the card.
PAST_DUE_GRACE = timedelta(days=7)

# Higher wins when a customer somehow holds two live subscriptions.
PLAN_RANK = {"free": 0, "pro": 1, "scale": 2, "enterprise": 3}


def stripe_customer_ensure(*, organization: Organization) -> StripeCustomer:
    """The organisation's one Stripe customer, created at Stripe (idempotently) the first time."""
    existing = StripeCustomer.objects.filter(organization=organization).first()
    if existing is not None:
        return existing
    # The idempotency key makes two racing first calls get the same customer back from Stripe.
    customer = stripe_client().v1.customers.create(
        {
            "name": organization.name,
            "metadata": {"organization_id": str(organization.pk), "slug": organization.slug},
        },
        {"idempotency_key": f"herald-customer-{organization.pk}"},
    )
    try:
        with transaction.atomic():
            return StripeCustomer.objects.create(organization=organization, customer_id=customer.id)
    except IntegrityError:
        return StripeCustomer.objects.get(organization=organization)


def checkout_session_create(*, organization: Organization, plan: str, success_url: str, cancel_url: str) -> str:
    """A Checkout Session (subscription mode) that buys `plan` for the organisation; the URL to send the owner to."""
    price = plan_prices().get(plan)
    if price is None:
        raise ValidationError(f"the {plan} plan cannot be bought here", code="plan_not_for_sale")
    customer = stripe_customer_ensure(organization=organization)
    from django.conf import settings

    line_items: list[dict[str, Any]] = [{"price": price, "quantity": 1}]
    if settings.STRIPE_PRICE_OVERAGE:
        line_items.append({"price": settings.STRIPE_PRICE_OVERAGE})  # metered: no quantity
    params: Any = {
        "mode": "subscription",
        "customer": customer.customer_id,
        "line_items": line_items,
        "client_reference_id": str(organization.pk),
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": {"organization_id": str(organization.pk)},
        "subscription_data": {"metadata": {"organization_id": str(organization.pk)}},
    }
    session = stripe_client().v1.checkout.sessions.create(params)
    return str(session.url)


def portal_session_create(*, organization: Organization, return_url: str) -> str:
    """A Customer Portal session (card, cancellation) for the organisation; the URL to send the owner to."""
    customer = stripe_customer_ensure(organization=organization)
    session = stripe_client().v1.billing_portal.sessions.create(
        {"customer": customer.customer_id, "return_url": return_url}
    )
    return str(session.url)


@dataclass(frozen=True)
class SubscriptionState:
    """What Stripe says now about a customer's subscription, and the plan that follows."""

    plan: str
    subscription_id: str = ""
    status: str = ""
    price_id: str = ""


def _item_prices(subscription: dict[str, Any]) -> list[str]:
    prices = []
    for item in subscription["items"]["data"]:
        # Subscription items carry `price`; older objects (and localstripe) `plan`, whose id is the same.
        price = item.get("price") or item.get("plan") or {}
        if price.get("id"):
            prices.append(str(price["id"]))
    return prices


def subscription_state_read(*, customer_id: str) -> SubscriptionState:
    """The customer's current plan as Stripe holds it now: its best live subscription, else Free."""
    subscriptions = stripe_client().v1.subscriptions.list({"customer": customer_id, "status": "all", "limit": 100})
    best = SubscriptionState(plan="free")
    for found in subscriptions.auto_paging_iter():
        subscription = found.to_dict()
        if subscription["customer"] != customer_id or subscription["status"] not in LIVE_SUBSCRIPTION_STATUSES:
            continue
        for price in _item_prices(subscription):
            plan = plan_for_price(price)
            if plan is not None and PLAN_RANK[plan] > PLAN_RANK[best.plan]:
                best = SubscriptionState(
                    plan=plan, subscription_id=subscription["id"], status=subscription["status"], price_id=price
                )
    return best


@dataclass(frozen=True)
class EventOutcome:
    """What processing one webhook event did: `processed`, `duplicate` or `unknown_customer`."""

    result: str
    organization_id: int | None = None
    plan: str | None = None


def stripe_event_process(*, event_id: str, event_type: str, data_object: dict[str, Any]) -> EventOutcome:
    """Apply one verified webhook event once: read the customer's subscription from Stripe, set the plan.

    The event's own payload only names the customer; the plan comes from Stripe's current state, so events
    arriving out of order or twice end in the same place. The StripeEvent row is written in the same
    transaction as the change, so a replay of the same event id changes nothing.
    """
    if StripeEvent.objects.filter(event_id=event_id).exists():
        return EventOutcome("duplicate")
    customer_id = data_object.get("customer")
    customer = (
        StripeCustomer.objects.select_related("organization").filter(customer_id=customer_id).first()
        if isinstance(customer_id, str) and customer_id
        else None
    )
    if customer is None:
        # Not a customer Herald made: nothing of any organisation may change.
        try:
            with transaction.atomic():
                StripeEvent.objects.create(event_id=event_id, type=event_type)
        except IntegrityError:
            return EventOutcome("duplicate")
        logger.warning("stripe event %s (%s) names no customer of Herald's: ignored", event_id, event_type)
        return EventOutcome("unknown_customer")
    state = subscription_state_read(customer_id=customer.customer_id)
    try:
        with transaction.atomic():
            StripeEvent.objects.create(event_id=event_id, type=event_type, organization=customer.organization)
            plan = _state_apply(customer=customer, state=state)
    except IntegrityError:
        if StripeEvent.objects.filter(event_id=event_id).exists():
            return EventOutcome("duplicate")
        raise
    return EventOutcome("processed", organization_id=customer.organization_id, plan=plan)


def _state_apply(*, customer: StripeCustomer, state: SubscriptionState) -> str:
    """Record Stripe's state on the customer row and move the organisation to the plan it gives; that plan.

    A past-due subscription keeps its plan for PAST_DUE_GRACE from the first time Herald saw it past due, then
    the organisation falls back to Free's limits; paying again (the subscription active) restores the plan.
    """
    now = timezone.now()
    locked = StripeCustomer.objects.select_for_update().select_related("organization").get(pk=customer.pk)
    locked.subscription_id = state.subscription_id
    locked.subscription_status = state.status
    locked.price_id = state.price_id
    if state.status == "past_due":
        locked.past_due_since = locked.past_due_since or now
    else:
        locked.past_due_since = None
    locked.save(update_fields=["subscription_id", "subscription_status", "price_id", "past_due_since", "updated_at"])
    plan = state.plan
    if locked.past_due_since is not None and now - locked.past_due_since >= PAST_DUE_GRACE:
        plan = "free"
    organization_plan_change(organization=locked.organization, plan=plan)
    return plan


def stripe_customer_sync(*, organization: Organization) -> str | None:
    """Read the organisation's subscriptions from Stripe now and apply them (the grace job); the plan, or None."""
    customer = StripeCustomer.objects.filter(organization=organization).first()
    if customer is None:
        return None
    state = subscription_state_read(customer_id=customer.customer_id)
    with transaction.atomic():
        return _state_apply(customer=customer, state=state)


def stripe_subscriptions_cancel(*, customer_id: str) -> int:
    """Cancel every live subscription of a Stripe customer (its organisation was deleted); how many."""
    client = stripe_client()
    canceled = 0
    subscriptions = client.v1.subscriptions.list({"customer": customer_id, "status": "all", "limit": 100})
    for found in subscriptions.auto_paging_iter():
        subscription = found.to_dict()
        if subscription["customer"] == customer_id and subscription["status"] not in ("canceled", "incomplete_expired"):
            client.v1.subscriptions.cancel(subscription["id"])
            canceled += 1
    return canceled
