"""The portal's billing page (owners only): the plan, upgrade through Checkout, manage in the Customer Portal, invoices.

Thin: portal.access checks the membership and the owner role; billing's services and selectors talk to Stripe.
Without STRIPE_SECRET_KEY the page says billing is not configured and offers nothing that would call Stripe.
"""

from __future__ import annotations

import logging

import stripe
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from billing.plans import PLANS, plan_for
from billing.selectors import invoices_for, stripe_customer_for
from billing.services import checkout_session_create, portal_session_create
from billing.stripe_api import billing_configured, plan_prices
from portal.access import organization_view, portal_context
from portal.permissions import Action

logger = logging.getLogger(__name__)

STRIPE_UNREACHABLE = "Stripe could not be reached; nothing was changed. Try again in a minute."


def _billing_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("portal:billing", args=[portal_context(request).organization.slug]))


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    """Send the browser to Stripe: a 303, or HX-Redirect for an htmx request."""
    if getattr(request, "htmx", False):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url, status=303)  # type: ignore[call-arg]


@organization_view(Action.BILLING_MANAGE)
@require_GET
def billing(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/billing/: the plan and what the owner can do about it."""
    ctx = portal_context(request)
    configured = billing_configured()
    customer = stripe_customer_for(organization=ctx.organization)
    current = plan_for(ctx.organization.plan)
    upgrades = [PLANS[code] for code in plan_prices() if code in PLANS and code != current.code] if configured else []
    return render(
        request,
        "portal/billing.html",
        {
            "section": "billing",
            "configured": configured,
            "plan": current,
            "customer": customer,
            "upgrades": upgrades,
        },
    )


@organization_view(Action.BILLING_MANAGE)
@require_GET
def billing_invoices(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/billing/invoices: the invoice table (htmx loads it after the page, so Stripe never slows the page)."""
    ctx = portal_context(request)
    error = None
    invoices = []
    if billing_configured():
        try:
            invoices = invoices_for(organization=ctx.organization)
        except stripe.StripeError:
            logger.exception("invoices of %s could not be read from Stripe", ctx.organization.slug)
            error = STRIPE_UNREACHABLE
    return render(request, "portal/_invoices.html", {"invoices": invoices, "error": error})


@organization_view(Action.BILLING_MANAGE)
@require_POST
def billing_upgrade(request: HttpRequest) -> HttpResponse:
    """POST /o/<slug>/billing/upgrade (plan=pro|scale): off to Stripe Checkout."""
    ctx = portal_context(request)
    back = _billing_url(request)
    if not billing_configured():
        messages.error(request, "Billing is not configured on this Herald.")
        return _redirect(request, back)
    plan = request.POST.get("plan", "")
    try:
        url = checkout_session_create(
            organization=ctx.organization, plan=plan, success_url=back + "?checkout=done", cancel_url=back
        )
    except ValidationError:
        messages.error(request, "Choose one of the plans on this page.")
        return _redirect(request, back)
    except stripe.StripeError:
        logger.exception("checkout for %s failed", ctx.organization.slug)
        messages.error(request, STRIPE_UNREACHABLE)
        return _redirect(request, back)
    return _redirect(request, url)


@organization_view(Action.BILLING_MANAGE)
@require_POST
def billing_manage(request: HttpRequest) -> HttpResponse:
    """POST /o/<slug>/billing/manage: off to Stripe's Customer Portal (card, cancellation), back here after."""
    ctx = portal_context(request)
    back = _billing_url(request)
    if not billing_configured():
        messages.error(request, "Billing is not configured on this Herald.")
        return _redirect(request, back)
    try:
        url = portal_session_create(organization=ctx.organization, return_url=back)
    except stripe.StripeError:
        logger.exception("customer portal for %s failed", ctx.organization.slug)
        messages.error(request, STRIPE_UNREACHABLE)
        return _redirect(request, back)
    return _redirect(request, url)
