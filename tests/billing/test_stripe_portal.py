"""The portal's billing page: owners only; upgrade through Checkout, manage in the Customer Portal, invoices."""

from __future__ import annotations

from typing import Any

import pytest

from billing.models import StripeCustomer
from billing.plans import PLANS
from tests.billing.conftest import StripeServers, event_payload, post_event
from tests.portal.conftest import Team, client_for


def _url(team: Team, page: str = "", slug: str | None = None) -> str:
    return f"/o/{slug or team.acme.organization.slug}/billing/{page}"


# Who may do what on Acme's billing pages (portal.permissions: billing.manage is the owner's; non-members get 404).
BILLING_ACCESS = [("anonymous", 302), ("globex_member", 404), ("viewer", 403), ("developer", 403), ("admin", 403)]


def test_only_owners_open_the_billing_page(stripe_env: StripeServers, team: Team) -> None:
    # Everyone but the owner first (one organisation for all six personas): none of them makes a Stripe customer.
    for persona, status in [*BILLING_ACCESS, ("owner", 200)]:
        client = client_for(team.user(persona))
        assert client.get(_url(team)).status_code == status, persona
        for page in ("upgrade", "manage"):
            expected = 303 if status == 200 else status
            assert client.post(_url(team, page), {"plan": "pro"}).status_code == expected, (persona, page)
        assert client.get(_url(team, "invoices")).status_code == status, persona
        if persona != "owner":
            assert not StripeCustomer.objects.filter(organization=team.acme.organization).exists(), persona


def test_the_billing_link_shows_for_owners_only(stripe_env: StripeServers, team: Team) -> None:
    assert _url(team) in client_for(team.owner).get(f"/o/{team.acme.organization.slug}/").content.decode()
    assert _url(team) not in client_for(team.admin).get(f"/o/{team.acme.organization.slug}/").content.decode()


def test_upgrade_goes_to_checkout_with_one_customer_per_organisation(stripe_env: StripeServers, team: Team) -> None:
    client = client_for(team.owner)
    page = client.get(_url(team)).content.decode()
    assert 'data-plan="free"' in page and "Upgrade to Pro" in page
    first = client.post(_url(team, "upgrade"), {"plan": "pro"})
    assert first.status_code == 303 and first["Location"].startswith("https://checkout.stripe.test/c/pay/cs_test_")
    second = client.post(_url(team, "upgrade"), {"plan": "pro"}, headers={"HX-Request": "true"})
    assert second.status_code == 204 and second["HX-Redirect"].startswith("https://checkout.stripe.test/")
    assert StripeCustomer.objects.filter(organization=team.acme.organization).count() == 1
    customer = StripeCustomer.objects.get(organization=team.acme.organization)
    found = stripe_env.client().v1.customers.retrieve(customer.customer_id).to_dict()
    assert found["metadata"]["organization_id"] == str(team.acme.organization.pk)


@pytest.mark.parametrize("plan", ["enterprise", "free", "", "pro' OR 1=1", "x" * 5000])
def test_upgrade_to_a_plan_not_for_sale_goes_back_with_a_message(
    stripe_env: StripeServers, team: Team, plan: str
) -> None:
    client = client_for(team.owner)
    response = client.post(_url(team, "upgrade"), {"plan": plan})
    assert response.status_code == 303 and response["Location"].endswith(_url(team))
    assert "Choose one of the plans" in client.get(_url(team)).content.decode()


def test_manage_opens_the_customer_portal_and_invoices_come_from_stripe(stripe_env: StripeServers, team: Team) -> None:
    client = client_for(team.owner)
    assert "no-invoices" not in client.get(_url(team)).content.decode()  # no customer yet: no invoice section
    session_url = client.post(_url(team, "upgrade"), {"plan": "pro"})["Location"]
    session = stripe_env.complete_checkout(session_url.rsplit("/", 1)[1])
    assert post_event(event_payload("checkout.session.completed", session)).status_code == 200

    page = client.get(_url(team)).content.decode()
    assert 'data-plan="pro"' in page and "Upgrade to Pro" not in page
    assert ("Upgrade to Scale" in page) == ("scale" in PLANS)  # Scale comes with the plans work (billing.plans)
    manage = client.post(_url(team, "manage"))
    assert manage.status_code == 303 and manage["Location"].startswith("https://billing.stripe.test/p/session/")
    invoices = client.get(_url(team, "invoices")).content.decode()
    assert invoices.count('class="invoice"') == 1 and "29.00 USD" in invoices and "paid" in invoices
    # Globex's owner sees none of Acme's invoices on Globex's page.
    globex = client_for(team.globex_member).get(_url(team, "invoices", slug=team.globex.organization.slug))
    assert globex.status_code == 200 and 'class="invoice"' not in globex.content.decode()


def test_without_stripe_keys_the_page_says_billing_is_not_configured(settings: Any, team: Team) -> None:
    settings.STRIPE_SECRET_KEY = ""
    client = client_for(team.owner)
    page = client.get(_url(team)).content.decode()
    assert "Billing is not configured" in page and "Upgrade to" not in page
    response = client.post(_url(team, "upgrade"), {"plan": "pro"})
    assert response.status_code == 303 and response["Location"].endswith(_url(team))
    assert client.get(_url(team, "invoices")).status_code == 200
    assert not StripeCustomer.objects.filter(organization=team.acme.organization).exists()


def test_stripe_unreachable_is_said_in_words(settings: Any, stripe_env: StripeServers, team: Team) -> None:
    from tests.servers import free_port

    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = client_for(team.owner)
    response = client.post(_url(team, "upgrade"), {"plan": "pro"})
    assert response.status_code == 303 and response["Location"].endswith(_url(team))
    assert "Stripe could not be reached" in client.get(_url(team)).content.decode()
