"""POST /billing/stripe/webhook with real signatures, against localstripe behind the Stripe fake.

The plan always follows Stripe's current state of the customer's subscriptions, whatever the order of the
events; each event id is applied once; one organisation's customer never moves another organisation's plan.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from billing.models import StripeCustomer, StripeEvent
from billing.services import checkout_session_create, stripe_customer_ensure
from herald.problems import PROBLEM_BASE
from tenants.models import AuditEntry, Organization
from tenants.resolve import api_key_resolve
from tests.billing.conftest import StripeServers, event_payload, post_event, sign
from tests.conftest import Org

# What no problem detail may show (as tests/herald/test_problem_wording.py checks for the API).
FORBIDDEN = re.compile(r"SignatureVerificationError|ValueError|Traceback|\bNo signatures found\b")


def _problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + slug and body["status"] == status and body["title"]
    assert body["detail"] and not FORBIDDEN.search(body["detail"])
    return body


def _plan(org: Org) -> str:
    return Organization.objects.get(pk=org.organization.pk).plan


def _buy(stripe_env: StripeServers, org: Org, plan: str = "pro") -> tuple[dict[str, Any], dict[str, Any]]:
    """Checkout as the owner would: the session, then the customer pays. (session, subscription) as Stripe has them."""
    url = checkout_session_create(
        organization=org.organization,
        plan=plan,
        success_url="http://herald.test/ok",
        cancel_url="http://herald.test/no",
    )
    session_id = url.rsplit("/", 1)[1]
    session = stripe_env.complete_checkout(session_id)
    subscription = stripe_env.client().v1.subscriptions.retrieve(session["subscription"]).to_dict()
    return session, subscription


def test_a_bad_or_missing_signature_is_400_and_changes_nothing(stripe_env: StripeServers, acme: Org) -> None:
    customer = stripe_customer_ensure(organization=acme.organization)
    payload = event_payload("customer.subscription.deleted", {"id": "sub_x", "customer": customer.customer_id})
    events_before = StripeEvent.objects.count()
    _problem(
        post_event(payload, signature=sign(payload, secret="whsec_someone_else")), 400, "invalid-webhook-signature"
    )
    _problem(post_event(payload, signature=""), 400, "invalid-webhook-signature")
    # Signed, then altered: the signature is over the raw body.
    _problem(post_event(payload + b" ", signature=sign(payload)), 400, "invalid-webhook-signature")
    _problem(post_event(b"\xff\xfe not json", signature=sign(b"\xff\xfe not json")), 400, "invalid-webhook-signature")
    assert StripeEvent.objects.count() == events_before
    assert post_event(payload).json()["result"] == "processed"  # the same body, signed with the secret: taken


def test_a_stale_timestamp_is_400(stripe_env: StripeServers) -> None:
    payload = event_payload("customer.subscription.updated", {"id": "sub_x", "customer": "cus_x"})
    stale = sign(payload, timestamp=int(time.time()) - 301)
    _problem(post_event(payload, signature=stale), 400, "invalid-webhook-signature")
    # Inside the 300 s tolerance it is accepted (an unknown customer: nothing changes).
    assert post_event(payload, signature=sign(payload, timestamp=int(time.time()) - 250)).status_code == 200


def test_unhandled_event_types_and_other_api_versions_are_refused(stripe_env: StripeServers) -> None:
    problem = _problem(post_event(event_payload("charge.refunded", {"id": "ch_x"})), 400, "webhook-event-refused")
    assert "charge.refunded" in problem["detail"] and "checkout.session.completed" in problem["detail"]
    old = event_payload("customer.subscription.updated", {"customer": "cus_x"}, api_version="2020-08-27")
    problem = _problem(post_event(old), 400, "webhook-event-refused")
    assert "2020-08-27" in problem["detail"]


def test_without_a_webhook_secret_billing_is_not_configured(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = ""
    payload = event_payload("customer.subscription.updated", {"customer": "cus_x"})
    _problem(post_event(payload), 503, "billing-not-configured")


def test_checkout_completed_moves_the_organisation_to_its_plan_once(stripe_env: StripeServers, acme: Org) -> None:
    assert api_key_resolve(acme.secret_key).plan == "free"  # type: ignore[union-attr]  # cached now
    session, _ = _buy(stripe_env, acme)
    payload = event_payload("checkout.session.completed", session)
    first = post_event(payload)
    assert first.status_code == 200 and first.json()["result"] == "processed"
    assert _plan(acme) == "pro"
    # The key cache forgot the old plan: the new rate applies at once.
    assert api_key_resolve(acme.secret_key).plan == "pro"  # type: ignore[union-attr]
    customer = StripeCustomer.objects.get(organization=acme.organization)
    assert customer.subscription_id == session["subscription"] and customer.subscription_status == "active"

    again = post_event(payload)  # Stripe retries: same event id, signed anew
    assert again.status_code == 200 and again.json()["result"] == "duplicate"
    event_id = payload.split(b'"id": "', 1)[1].split(b'"', 1)[0].decode()
    assert StripeEvent.objects.filter(event_id=event_id).count() == 1
    changes = AuditEntry.objects.filter(organization=acme.organization, action=AuditEntry.Action.PLAN_CHANGED)
    assert changes.count() == 1


def test_subscription_updated_before_checkout_completed_still_ends_in_the_right_plan(
    stripe_env: StripeServers, acme: Org
) -> None:
    session, subscription = _buy(stripe_env, acme, plan="scale")
    updated = post_event(event_payload("customer.subscription.updated", subscription))
    assert updated.status_code == 200 and _plan(acme) == "scale"
    completed = post_event(event_payload("checkout.session.completed", session))
    assert completed.status_code == 200 and completed.json()["result"] == "processed"
    assert _plan(acme) == "scale"


def test_a_deleted_subscription_goes_back_to_free_and_a_late_update_does_not_revive_it(
    stripe_env: StripeServers, acme: Org
) -> None:
    session, subscription = _buy(stripe_env, acme)
    assert post_event(event_payload("checkout.session.completed", session)).status_code == 200
    assert _plan(acme) == "pro"
    canceled = stripe_env.client().v1.subscriptions.cancel(subscription["id"]).to_dict()
    assert post_event(event_payload("customer.subscription.deleted", canceled)).status_code == 200
    assert _plan(acme) == "free"
    # An `updated` event from before the cancellation, delivered late, still says active: Stripe's state wins.
    assert post_event(event_payload("customer.subscription.updated", subscription)).status_code == 200
    assert _plan(acme) == "free"
    assert StripeCustomer.objects.get(organization=acme.organization).subscription_status == ""


def test_one_organisations_customer_never_changes_another_organisations_plan(
    stripe_env: StripeServers, acme: Org, globex: Org
) -> None:
    session, subscription = _buy(stripe_env, globex)
    # Globex's checkout, dressed up as Acme's (client_reference_id and metadata naming Acme).
    forged = {
        **session,
        "client_reference_id": str(acme.organization.pk),
        "metadata": {"organization_id": str(acme.organization.pk)},
    }
    assert post_event(event_payload("checkout.session.completed", forged)).status_code == 200
    assert _plan(globex) == "pro" and _plan(acme) == "free"
    # A customer Herald never made changes nobody.
    stranger = stripe_env.client().v1.customers.create({"name": "stranger"})
    response = post_event(event_payload("customer.subscription.updated", {**subscription, "customer": stranger.id}))
    assert response.status_code == 200 and response.json()["result"] == "unknown_customer"
    assert _plan(globex) == "pro" and _plan(acme) == "free"


@pytest.mark.parametrize("data_object", [[], "sub_x", None])
def test_an_event_without_an_object_is_refused(stripe_env: StripeServers, data_object: Any) -> None:
    _problem(post_event(event_payload("customer.subscription.updated", data_object)), 400, "webhook-event-refused")


async def test_a_failed_payment_keeps_the_plan_for_seven_days_then_free_until_paid_again(
    stripe_env: StripeServers, acme: Org
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from herald.tasks import upkeep_enqueue
    from tests.billing.jobs_support import run_worker_until_idle
    from tests.notifications.realtime_support import run_db

    session, subscription = await run_db(_buy, stripe_env, acme)
    await run_db(post_event, event_payload("checkout.session.completed", session))
    assert await run_db(_plan, acme) == "pro"

    # The renewal fails: Stripe reports the subscription past due and sends invoice.payment_failed.
    stripe_env.subscription_status_set(subscription["id"], "past_due")
    invoice = {"id": "in_failed", "object": "invoice", "customer": session["customer"], "status": "open"}
    await run_db(post_event, event_payload("invoice.payment_failed", invoice))
    assert await run_db(_plan, acme) == "pro"  # the grace: Stripe is still retrying the card
    customer = await run_db(StripeCustomer.objects.get, organization=acme.organization)
    assert customer.subscription_status == "past_due" and customer.past_due_since is not None
    assert (await run_db(upkeep_enqueue))["past_due"] == 0  # not a day late yet

    # Eight days on, no event comes: the upkeep round looks, and the organisation falls back to Free.
    await run_db(
        lambda: StripeCustomer.objects.filter(pk=customer.pk).update(past_due_since=timezone.now() - timedelta(days=8))
    )
    assert (await run_db(upkeep_enqueue))["past_due"] == 1
    await run_worker_until_idle(queues=["billing"])
    assert await run_db(_plan, acme) == "free"

    # The owner pays: the subscription is active again and the plan comes back.
    stripe_env.subscription_status_set(subscription["id"], "active")
    await run_db(post_event, event_payload("invoice.paid", {**invoice, "id": "in_paid", "status": "paid"}))
    assert await run_db(_plan, acme) == "pro"
    assert (await run_db(StripeCustomer.objects.get, pk=customer.pk)).past_due_since is None


def test_stripe_unreachable_while_processing_leaves_the_event_for_stripes_retry(
    settings: Any, stripe_env: StripeServers, acme: Org
) -> None:
    from django.test import Client

    from tests.servers import free_port

    session, _ = _buy(stripe_env, acme)
    payload = event_payload("checkout.session.completed", session)
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # Stripe away: the current state cannot be read
    response = Client(raise_request_exception=False).post(
        "/billing/stripe/webhook",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": sign(payload)},
    )
    assert response.status_code == 500 and _plan(acme) == "free"
    assert not StripeEvent.objects.filter(organization=acme.organization).exists()  # not marked as processed
    settings.STRIPE_API_BASE = stripe_env.url
    assert post_event(payload).json()["result"] == "processed"  # Stripe's retry of the same event
    assert _plan(acme) == "pro"
