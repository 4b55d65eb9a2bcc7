"""The seed article's design, as a baseline: one AsyncWebsocketConsumer, one shared group.

    uvicorn seed_asgi:application  (with REDIS_URL set; run by infra/bench/realtime.py)

Exactly the article's consumer and routing, on channels-redis defaults (core
RedisChannelLayer, capacity 100, group_expiry 86400). Its `send_notification`
sends the event's message to the socket, which the article leaves to the
reader. AuthMiddlewareStack is left out: it needs the auth and session apps and
a database, and the benchmark's clients send no cookies, so it adds nothing
but start-up cost.
"""

from __future__ import annotations

import json
import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="seed-baseline-only",  # noqa: S106 - a throwaway process of the benchmark
    INSTALLED_APPS=["channels"],
    ALLOWED_HOSTS=["*"],
    CHANNEL_LAYERS={
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [os.environ["REDIS_URL"]]}}
    },
)
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class NotificationConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add("notifications", self.channel_name)
        await self.accept()

    async def disconnect(self, close_code: int) -> None:
        await self.channel_layer.group_discard("notifications", self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        pass

    async def send_notification(self, event: dict) -> None:  # type: ignore[type-arg]
        await self.send(text_data=json.dumps(event["message"]))


websocket_urlpatterns = [path("ws/notifications/", NotificationConsumer.as_asgi())]

application = ProtocolTypeRouter({"websocket": URLRouter(websocket_urlpatterns)})
