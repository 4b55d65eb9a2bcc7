"""URLs of the inbox widget (served everywhere) and of the demo page (development only)."""

from __future__ import annotations

from django.urls import path

from notifications.demo import demo_asset, demo_page, demo_send
from notifications.widget import widget_script

urlpatterns = [
    path("widget/v1/herald.js", widget_script, name="widget-script"),
    path("demo/", demo_page, name="demo"),
    path("demo/send", demo_send, name="demo-send"),
    path("demo/<str:name>", demo_asset, name="demo-asset"),
]
