"""tenants announces key and signing-secret changes through tenants.signals, and reads plan rates through a
provider billing registers: it imports neither notifications nor billing (tests/herald/test_import_directions.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.dispatch import Signal

from billing.plans import PLANS
from notifications.key_events import key_events_connect
from tenants.keys import key_hash
from tenants.models import ApiKey, SigningSecret
from tenants.plans import PlanRate, plan_rate
from tenants.services import api_key_revoke, api_key_roll, signing_secret_rotate
from tenants.signals import api_key_expiring, api_key_revoked, signing_secret_rotated
from tests.conftest import Org


@pytest.fixture
def heard() -> Iterator[list[tuple[Signal, dict[str, Any]]]]:
    """What the three signals said during the test, in order."""
    calls: list[tuple[Signal, dict[str, Any]]] = []
    receivers = []
    for signal in (api_key_revoked, api_key_expiring, signing_secret_rotated):

        def receiver(*, signal: Signal, sender: Any, **kwargs: Any) -> None:
            calls.append((signal, {"sender": sender, **kwargs}))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    yield calls
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def _row(key: str) -> ApiKey:
    return ApiKey.objects.get(key_hash=key_hash(key))


def test_revoking_a_key_announces_it(acme: Org, heard: list[tuple[Signal, dict[str, Any]]]) -> None:
    row = _row(acme.publishable_key)
    api_key_revoke(api_key=row)
    assert [(signal, kwargs["api_key"].pk, kwargs["sender"]) for signal, kwargs in heard] == [
        (api_key_revoked, row.pk, ApiKey)
    ]
    assert heard[0][1]["api_key"].revoked_at is not None


def test_rolling_a_key_announces_when_the_old_one_stops_working(
    acme: Org, heard: list[tuple[Signal, dict[str, Any]]]
) -> None:
    row = _row(acme.secret_key)
    api_key_roll(api_key=row, grace=timedelta(minutes=5))
    row.refresh_from_db()
    assert [(signal, kwargs["api_key"].pk) for signal, kwargs in heard] == [(api_key_expiring, row.pk)]
    assert heard[0][1]["expires_at"] == row.expires_at is not None


def test_rotating_the_signing_secret_announces_the_new_secret(
    acme: Org, heard: list[tuple[Signal, dict[str, Any]]]
) -> None:
    new = signing_secret_rotate(organization=acme.organization, overlap=timedelta(hours=1))
    assert [signal for signal, _ in heard] == [signing_secret_rotated]
    kwargs = heard[0][1]
    assert kwargs["sender"] is SigningSecret
    assert kwargs["organization"].pk == acme.organization.pk and kwargs["signing_secret"].pk == new.pk


def test_notifications_listens_to_the_key_events_from_its_app_config() -> None:
    # disconnect() says whether that receiver was connected; the finally puts them back as ready() left them.
    try:
        assert api_key_revoked.disconnect(sender=ApiKey, dispatch_uid="notifications.key_revoked")
        assert api_key_expiring.disconnect(sender=ApiKey, dispatch_uid="notifications.key_expiring")
    finally:
        key_events_connect()
    assert api_key_revoked.has_listeners(ApiKey) and api_key_expiring.has_listeners(ApiKey)


@pytest.mark.parametrize("code", sorted(PLANS))
def test_plan_rates_come_from_billings_plans(code: str) -> None:
    assert plan_rate(code) == PlanRate(rate_per_second=PLANS[code].rate_per_second, burst=PLANS[code].burst)


def test_an_unknown_plan_gets_the_free_rate() -> None:
    free = PLANS["free"]
    assert plan_rate("no-such-plan") == PlanRate(rate_per_second=free.rate_per_second, burst=free.burst)
