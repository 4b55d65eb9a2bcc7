from django.urls import include, path

from herald.health import healthz, metrics_view, readyz
from herald.v1 import api

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("v1/", api.urls),
    path("", include("notifications.widget_urls")),
]

handler404 = "herald.api.not_found"
