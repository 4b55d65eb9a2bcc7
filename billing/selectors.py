"""Reads of billing: an organisation's customer and its invoices (from Stripe)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from billing.models import StripeCustomer
from billing.stripe_api import stripe_client
from tenants.models import Organization


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
