"""Django's ASGI handler for the /v1 API, without the portal's middleware.

The portal's middleware (sessions, CSRF, auth, messages, ...) is `MiddlewareMixin` middleware: under ASGI each
one runs its hooks through `sync_to_async`, a hop to Django's one sync thread and back (docs/architecture.md, measured:
~3 ms a request), and every request of every organisation queues for that thread. The API needs none of it:
keys, not sessions; no cookies, so no CSRF. This handler runs one native async middleware instead, which does
what the API needs of Django's: the Host check (ALLOWED_HOSTS), the security headers, Content-Length.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from herald.compat import django_handler_chain_install
from herald.front import SECURITY_HEADERS

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def api_middleware(get_response: GetResponse) -> GetResponse:
    async def middleware(request: HttpRequest) -> HttpResponseBase:
        request.get_host()  # DisallowedHost (400) unless in ALLOWED_HOSTS, as CommonMiddleware checks it
        response = await get_response(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not response.streaming and "Content-Length" not in response.headers:  # as CommonMiddleware: not chunked
            response.headers["Content-Length"] = str(len(response.content))  # type: ignore[attr-defined]
        return response

    return middleware


class ApiHandler(ASGIHandler):
    """ASGIHandler with `api_middleware` as its whole middleware chain (always async)."""

    def load_middleware(self, is_async: bool = False) -> None:
        django_handler_chain_install(self, api_middleware)
