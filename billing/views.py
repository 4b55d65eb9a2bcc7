"""POST /billing/stripe/webhook: Stripe's events, verified on the raw body, each processed once."""

from __future__ import annotations

import json
import logging

import stripe
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.services import stripe_event_process
from billing.stripe_api import HANDLED_EVENT_TYPES, webhook_configured
from herald.problems import problem_response

logger = logging.getLogger(__name__)

# Stripe's own replay window; an older signature is refused even when it matches.
SIGNATURE_TOLERANCE_SECONDS = 300


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Verify the signature, refuse what Herald does not handle, apply the event once."""
    if not webhook_configured():
        return problem_response("billing-not-configured", instance=request.path)
    try:
        verified = stripe.Webhook.construct_event(
            request.body,
            request.headers.get("Stripe-Signature", ""),
            settings.STRIPE_WEBHOOK_SECRET,
            tolerance=SIGNATURE_TOLERANCE_SECONDS,
        )
    except (ValueError, stripe.SignatureVerificationError):
        # ValueError: a body that is not UTF-8 JSON (its signature is checked first, so only Stripe gets here).
        return problem_response("invalid-webhook-signature", instance=request.path)
    event = verified.to_dict()  # a StripeObject is not a dict: read its data
    if event.get("api_version") != settings.STRIPE_API_VERSION:
        return problem_response(
            "webhook-event-refused",
            f"Events must be sent with API version {settings.STRIPE_API_VERSION}; this one has "
            f"{event.get('api_version') or 'none'}. Create the webhook endpoint with that version.",
            instance=request.path,
        )
    if event.get("type") not in HANDLED_EVENT_TYPES:
        return problem_response(
            "webhook-event-refused",
            f"Herald does not handle {event.get('type') or 'events without a type'}; the endpoint takes "
            + ", ".join(sorted(HANDLED_EVENT_TYPES))
            + ".",
            instance=request.path,
        )
    data_object = event.get("data", {}).get("object")
    if not isinstance(data_object, dict):
        return problem_response("webhook-event-refused", "The event has no data object.", instance=request.path)
    outcome = stripe_event_process(event_id=str(event["id"]), event_type=str(event["type"]), data_object=data_object)
    logger.info("stripe event %s %s: %s", event["id"], event["type"], outcome.result)
    return HttpResponse(json.dumps({"received": True, "result": outcome.result}), content_type="application/json")
