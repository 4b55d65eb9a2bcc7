"""The ASGI application: HTTP through the /v1 front and Django, WebSocket through Channels."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "herald.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from herald.api_handler import ApiHandler  # noqa: E402

api_application = ApiHandler()  # /v1/: the same views, without the portal's middleware

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from herald import metrics  # noqa: E402
from herald.front import front  # noqa: E402
from herald.health import probes_first  # noqa: E402
from herald.logs import request_logging  # noqa: E402
from notifications.lean import ROUTES as SEND_ROUTES  # noqa: E402
from notifications.routing import websocket_application  # noqa: E402

# No AuthMiddlewareStack: sockets are widgets' (publishable key + subscriber
# proof), not portal users', and session lookups would run on whatever schema
# the shared connection last had (docs/architecture.md, tenancy rules).
application = ProtocolTypeRouter(
    {
        # /v1/: the front (keys, rate limits, body limit, problems), the send routes on the event loop with the
        # send engine, the rest through Django without the portal's middleware. Everything else: Django.
        "http": request_logging(probes_first(front(django_application, api_application, SEND_ROUTES))),
        "websocket": request_logging(websocket_application),
    }
)
metrics.process_start()

if settings.HERALD_GC_FREEZE:
    # Everything imported so far (Django, the apps, their modules) lives as long as the process: move it out
    # of the collector's sight, so a full collection walks only what requests and sockets create, and
    # collect young objects less often (Instagram's recipe; CPython's gc.freeze documentation).
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
