"""`herald purge_idempotency`: records past retention go, in every organisation; younger ones stay."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from notifications.models import IdempotencyRecord
from tests.conftest import Org


def _records(org: Org, *ages_hours: float) -> None:
    with org.activate():
        for age in ages_hours:
            record = IdempotencyRecord.objects.create(
                key=f"k-{age}", endpoint="/v1/notifications", request_hash="h", status_code=202, response={}
            )
            IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - timedelta(hours=age))


def _ages(org: Org) -> list[str]:
    with org.activate():
        return sorted(IdempotencyRecord.objects.values_list("key", flat=True))


def test_purge_deletes_only_records_past_retention_in_every_organisation(acme: Org, globex: Org) -> None:
    _records(acme, 0, 30, 50)
    _records(globex, 1, 49)
    out = StringIO()
    call_command("purge_idempotency", stdout=out)
    assert _ages(acme) == ["k-0", "k-30"]
    assert _ages(globex) == ["k-1"]
    assert "deleted" in out.getvalue()
    call_command("purge_idempotency", "--hours", "24", stdout=StringIO())
    assert _ages(acme) == ["k-0"]


def test_purge_refuses_a_retention_shorter_than_the_promise(acme: Org) -> None:
    _records(acme, 13)
    with pytest.raises(CommandError, match="at least 24"):
        call_command("purge_idempotency", "--hours", "12")
    assert _ages(acme) == ["k-13"]
