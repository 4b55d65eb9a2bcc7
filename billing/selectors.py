"""billing's reads: what GET /v1/usage and the portal's usage page show (both from billing.usage)."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from billing.usage import FIGURES, DayUsage, usage_days, usage_period
from tenants.models import Organization


def usage_summary(*, organization_id: int, start: date, end: date) -> dict[str, Any]:
    """The organisation's plan and limits, its current period, and its days from `start` to `end`."""
    organization = Organization.objects.get(pk=organization_id)
    period = usage_period(organization)
    days = usage_days(organization, start, end)
    return {
        "from": start,
        "to": end,
        "days": [d.as_dict() for d in days],
        "messages": sum(d.messages for d in days),
        "notifications": sum(d.notifications for d in days),
        "plan": {"code": period.plan.code, "name": period.plan.name, "limits": period.plan.limits()},
        "period": {
            "start": period.start,
            "end": period.end,
            "resets_at": period.resets_at,
            "test": period.test,
            **period.totals(),
        },
    }


def usage_csv(days: list[DayUsage]) -> str:
    """The days as CSV, one row a day, oldest first, with a header row naming the figures."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", *FIGURES])
    for day in days:
        writer.writerow([day.date.isoformat(), *(getattr(day, name) for name in FIGURES)])
    return out.getvalue()
