from typing import Any

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # tenants' rate limiter reads plan rates through this provider (tenants cannot import billing).
        from billing.connections import connection_watch_register
        from billing.metering import overage_quantity_source_register
        from billing.plans import plan_rate
        from billing.quotas import quota_step
        from billing.usage import overage_quantity
        from notifications.sending import steps
        from tenants.plans import plan_rate_provider_register
        from tenants.signals import organization_plan_changed

        plan_rate_provider_register(plan_rate)
        # The monthly notification quota is checked in every send, before anything is written.
        steps.register(quota_step)
        connection_watch_register()
        # The overage reported to Stripe's meter is the ledger's figure of that day (rolled up first).
        overage_quantity_source_register(overage_quantity)

        def plan_changed(sender: Any, organization: Any, **kwargs: Any) -> None:
            quota_step.forget(int(organization.pk))

        organization_plan_changed.connect(plan_changed, dispatch_uid="billing.quota_forget", weak=False)
