from django.urls import include, path

from herald.health import healthz, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("", include("notifications.widget_urls")),
]
