from django.urls import include, path

from herald.health import healthz, metrics_view, readyz
from herald.v1 import api

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("v1/", api.urls),
    path("billing/", include("billing.urls")),
    path("", include("notifications.widget_urls")),
    # The portal: accounts (allauth) and the organisation pages under /o/<slug>/.
    path("accounts/", include("allauth.urls")),
    path("", include("portal.urls")),
]

handler404 = "herald.errors.not_found"
handler400 = "herald.problems.bad_request"
handler500 = "herald.problems.server_error"
