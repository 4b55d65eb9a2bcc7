"""The /v1 API with every app's routers mounted (kept apart from herald.openapi so apps can import its pieces)."""

from __future__ import annotations

from django.http import HttpResponse
from ninja.operation import PathView

from billing.api import secret as billing_secret
from herald.compat import ninja_method_not_allowed_install
from herald.openapi import api
from herald.problems import problem_response
from notifications.api import secret, widget

api.add_router("", secret)
api.add_router("", widget)
api.add_router("", billing_secret)


def _method_not_allowed(view: PathView) -> HttpResponse:
    """A route's answer to a method it does not serve: a problem document with `Allow` (django-ninja's is HTML).

    Installed on django-ninja's PathView class (herald.compat): this process serves one NinjaAPI, this one."""
    allowed = ", ".join(sorted({method for operation in view.operations for method in operation.methods}))
    return problem_response("method-not-allowed", f"Allowed: {allowed}", headers={"Allow": allowed})


ninja_method_not_allowed_install(_method_not_allowed)

__all__ = ["api"]
