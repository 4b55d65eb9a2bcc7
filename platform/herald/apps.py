from typing import Any

from django.apps import AppConfig


def _schema_drop_schedule(**kwargs: Any) -> None:
    from herald.tasks import schema_drop_schedule

    schema_drop_schedule(**kwargs)


class HeraldConfig(AppConfig):
    name = "herald"

    def ready(self) -> None:
        # A deleted organisation's schema is dropped by a background job, some days later (herald.tasks).
        from tenants.signals import organization_deleted

        organization_deleted.connect(_schema_drop_schedule, dispatch_uid="herald.schema_drop_schedule", weak=False)
