"""The /v1 API with every app's routers mounted (kept apart from herald.api so apps can import the pipeline)."""

from __future__ import annotations

from herald.api import api
from notifications.api import secret, widget

api.add_router("", secret)
api.add_router("", widget)

__all__ = ["api"]
