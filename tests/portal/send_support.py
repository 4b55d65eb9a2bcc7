"""One way for the portal tests to send: the same send service the API and the quickstart use."""

from __future__ import annotations

from typing import Any

from notifications import services
from tests.conftest import Org


def portal_send(org: Org, **fields: Any) -> services.SendResult:
    """Send one notification in `org` (title "Hello" unless given); its result once committed."""
    with org.activate():
        draft = services.NotificationDraft(**{"title": "Hello", **fields})
        return services.notification_send(organization_id=org.organization.pk, draft=draft)
