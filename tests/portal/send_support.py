"""One way for the portal tests to send: the send engine the API and the quickstart use."""

from __future__ import annotations

from typing import Any

from notifications.sending import NotificationDraft, Sender, SendResult, notification_send_blocking
from tests.conftest import Org


def portal_send(org: Org, **fields: Any) -> SendResult:
    """Send one notification in `org` (title "Hello" unless given); its result once committed."""
    organization = org.organization
    sender = Sender(organization_id=organization.pk, schema_name=organization.schema_name)
    answer = notification_send_blocking(sender=sender, draft=NotificationDraft(**{"title": "Hello", **fields}))
    assert answer.status == 202, answer.body
    return SendResult(id=answer.body["id"], seq=answer.body["seq"], recipients=answer.body["recipients"])
