"""Billing fixtures: Stripe on 127.0.0.1 (localstripe behind the fake, tests/billing/stripe_fake.py), webhooks
signed for real with the test's webhook secret, and a settings override that points Herald at them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe
from django.test import Client

from tests.servers import free_port

SECRET_KEY = "sk_test_herald_" + "x" * 24
WEBHOOK_SECRET = "whsec_herald_test_secret"
METER_ID = "mtr_test_herald"


@dataclass(frozen=True)
class StripeServers:
    url: str  # the fake, passing what it does not answer to localstripe
    localstripe_url: str
    price_pro: str
    price_scale: str
    price_overage: str

    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(SECRET_KEY, base_addresses={"api": self.url})

    def complete_checkout(self, session_id: str) -> dict[str, Any]:
        """The customer pays: the session completes and its subscription exists (in localstripe)."""
        response = httpx.post(
            f"{self.url}/_test/checkout/sessions/{session_id}/complete",
            headers={"Authorization": f"Bearer {SECRET_KEY}"},
            timeout=10,
        )
        response.raise_for_status()
        return dict(response.json())

    def subscription_status_set(self, subscription_id: str, status: str) -> None:
        """From now on Stripe reports the subscription in `status` (past_due: a renewal failed)."""
        httpx.post(f"{self.url}/_test/subscriptions/{subscription_id}/status", json={"status": status}, timeout=10)

    def meter_events(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/_test/meter_events", timeout=10).json())


@pytest.fixture(scope="session")
def stripe_servers() -> Iterator[StripeServers]:
    port, localstripe_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.billing.stripe_fake",
            "--port",
            str(port),
            "--localstripe-port",
            str(localstripe_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "ready ..." once both listen; bounded by the process's own start
        if not line.startswith("ready"):
            raise RuntimeError(f"the Stripe fakes did not start: {line}{process.stdout.read()[-3000:]}")
        url = f"http://127.0.0.1:{port}"
        client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": url})
        prices = {}
        for name, amount, usage in (("Pro", 2900, "licensed"), ("Scale", 19900, "licensed"), ("Overage", 1, "metered")):
            price = client.v1.prices.create(
                {
                    "currency": "usd",
                    "unit_amount": amount,
                    "recurring": {"interval": "month", "usage_type": usage},  # type: ignore[typeddict-item]
                    "product_data": {"name": f"Herald {name}"},
                }
            )
            prices[name] = price.id
        yield StripeServers(
            url=url,
            localstripe_url=f"http://127.0.0.1:{localstripe_port}",
            price_pro=prices["Pro"],
            price_scale=prices["Scale"],
            price_overage=prices["Overage"],
        )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def stripe_env(settings: Any, stripe_servers: StripeServers) -> StripeServers:
    """Herald configured for the fakes: keys, API base, prices and the meter."""
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = stripe_servers.url
    settings.STRIPE_PRICE_PRO = stripe_servers.price_pro
    settings.STRIPE_PRICE_SCALE = stripe_servers.price_scale
    settings.STRIPE_PRICE_OVERAGE = ""
    settings.STRIPE_METER_ID = METER_ID
    return stripe_servers


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header as Stripe computes it: t=<unix time>,v1=HMAC-SHA256(secret, "t.payload")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def event_payload(event_type: str, data_object: dict[str, Any], *, api_version: str | None = None) -> bytes:
    """A webhook body in Stripe's event shape."""
    from django.conf import settings

    return json.dumps(
        {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": api_version or settings.STRIPE_API_VERSION,
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "type": event_type,
            "data": {"object": data_object},
        }
    ).encode()


def post_event(payload: bytes, *, signature: str | None = None) -> Any:
    """POST the body to the webhook through Django, signed unless told otherwise."""
    return Client().post(
        "/billing/stripe/webhook",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": signature if signature is not None else sign(payload)},
    )


# The portal's personas (Acme's owner, admin, developer and viewer; Globex's owner), for the billing page.
from tests.portal.conftest import team  # noqa: E402, F401
