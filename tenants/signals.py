"""What tenants tells the apps built on it: key and signing-secret events.

tenants is the ground floor and imports no app above it; an app that must act
on these events (notifications closes the sockets of a revoked key) connects a
receiver in its AppConfig.ready. Each signal is sent inside the transaction
that made the change: a receiver that leaves the process (channel layer,
email) does so in `transaction.on_commit`, so a rolled-back change tells no one.
"""

from __future__ import annotations

from django.dispatch import Signal

# sender=ApiKey, api_key=<the revoked ApiKey>.
api_key_revoked = Signal()

# sender=ApiKey, api_key=<the rolled ApiKey>, expires_at=<aware datetime when it stops working>.
api_key_expiring = Signal()

# sender=SigningSecret, organization=<Organization>, signing_secret=<the new SigningSecret>;
# the organisation's other live secrets now expire at the end of the overlap.
signing_secret_rotated = Signal()

# sender=Organization, organization=<Organization>, before=<old plan code>, after=<new plan code>; its keys'
# cached state (plan included) is forgotten after commit, so the new plan's limits apply at once.
organization_plan_changed = Signal()

# sender=Organization, organization=<the Organization>, deleted_schema=<the DeletedSchema>: sent in the deletion's
# transaction just before the organisation's rows go; its schema waits to be dropped (herald's background jobs
# schedule the drop, and the cancellation of its Stripe subscriptions).
organization_deleted = Signal()
