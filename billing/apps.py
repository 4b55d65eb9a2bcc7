from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # tenants' rate limiter reads plan rates through this provider (tenants cannot import billing).
        from billing.plans import plan_rate
        from tenants.plans import plan_rate_provider_register

        plan_rate_provider_register(plan_rate)
