"""billing's reads: what GET /v1/usage and the portal's usage page show (from billing.usage), and an
organisation's Stripe customer and its invoices (read from Stripe)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from billing.models import StripeCustomer
from billing.stripe_api import stripe_client
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


@dataclass(frozen=True)
class InvoiceRow:
    """One invoice as the billing page shows it."""

    number: str
    created: datetime
    status: str
    amount_due: int  # in the currency's smallest unit
    currency: str
    url: str

    @property
    def amount(self) -> str:
        return f"{self.amount_due / 100:,.2f} {self.currency.upper()}"


def stripe_customer_for(*, organization: Organization) -> StripeCustomer | None:
    """The organisation's Stripe customer row, or None before its first upgrade."""
    return StripeCustomer.objects.filter(organization=organization).first()


def invoices_for(*, organization: Organization, limit: int = 12) -> list[InvoiceRow]:
    """The organisation's latest invoices, newest first, read from Stripe (none before it has a customer)."""
    customer = stripe_customer_for(organization=organization)
    if customer is None:
        return []
    invoices = stripe_client().v1.invoices.list({"customer": customer.customer_id, "limit": limit})
    rows = []
    for found in invoices.data:
        invoice = found.to_dict()
        if invoice.get("customer") != customer.customer_id:
            continue  # only ever this organisation's customer's invoices
        rows.append(
            InvoiceRow(
                number=str(invoice.get("number") or invoice["id"]),
                created=datetime.fromtimestamp(int(invoice.get("created") or 0), tz=UTC),
                status=str(invoice.get("status") or ""),
                amount_due=int(invoice.get("amount_due") or 0),
                currency=str(invoice.get("currency") or "usd"),
                url=str(invoice.get("hosted_invoice_url") or ""),
            )
        )
    return sorted(rows, key=lambda row: row.created, reverse=True)
