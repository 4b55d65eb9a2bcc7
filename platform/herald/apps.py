from typing import Any

from django.apps import AppConfig


def _organization_deleted(**kwargs: Any) -> None:
    from herald.tasks import organization_deleted_schedule

    organization_deleted_schedule(**kwargs)


class HeraldConfig(AppConfig):
    name = "herald"

    def ready(self) -> None:
        # A deleted organisation's schema is dropped by a background job some days later, and its Stripe
        # subscriptions are canceled by another (herald.tasks).
        from tenants.signals import organization_deleted

        organization_deleted.connect(_organization_deleted, dispatch_uid="herald.organization_deleted", weak=False)
