from django.urls import include, path

from herald.health import healthz, readyz
from herald.v1 import api

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("v1/", api.urls),
    path("", include("notifications.widget_urls")),
]

handler404 = "herald.api.not_found"
handler400 = "herald.problems.bad_request"
handler500 = "herald.problems.server_error"
