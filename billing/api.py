"""billing's /v1 router: GET /v1/usage (the pipeline in herald.operations has authenticated the key)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Query, Router
from ninja.decorators import decorate_view
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from billing import selectors
from billing.schemas import UsageOut
from herald.errors import validation_detail
from herald.openapi import SecretKey
from herald.operations import secret_operation
from herald.problems import Problem

secret = Router(auth=SecretKey(), tags=["server"])

MAX_RANGE_DAYS = 366
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date_only(value: object) -> object:
    """A day is written YYYY-MM-DD, as the document says; pydantic alone would also take `0` as 1970-01-01."""
    if isinstance(value, str) and not ISO_DATE.fullmatch(value):
        raise PydanticCustomError("date_parsing", "Input should be a valid date")  # worded as pydantic's own
    return value


Day = Annotated[date, BeforeValidator(_iso_date_only)]


@secret.get("/usage", response=UsageOut, summary="Usage, plan and limits", by_alias=True)
@decorate_view(secret_operation())
def usage(
    request: HttpRequest,
    start: Annotated[
        Day | None, Query(alias="from", description="first day (UTC), default 29 days before `to`")
    ] = None,
    end: Annotated[Day | None, Query(alias="to", description="last day (UTC), default today")] = None,
) -> dict[str, Any]:
    """The plan, its limits, the current month's counts, and every figure per day from `from` to `to`."""
    end = end or datetime.now(tz=UTC).date()
    start = start or end - timedelta(days=29)
    errors = []
    if start > end:
        errors.append(
            {"loc": ["query", "from"], "field": "from", "msg": "must not be after `to`", "type": "date_order"}
        )
    if (end - start).days > MAX_RANGE_DAYS:
        errors.append(
            {"loc": ["query", "from"], "field": "from", "msg": "must be at most 367 days before `to`", "type": "range"}
        )
    if errors:
        raise Problem("validation-error", validation_detail(errors), errors=errors)
    return selectors.usage_summary(organization_id=request.herald_key.organization_id, start=start, end=end)  # type: ignore[attr-defined]
