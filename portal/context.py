"""Template context for every page: the organisation in view and the user's organisations (the switcher)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from portal.selectors import memberships_of


def portal(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    memberships: Any = []
    if user is not None and user.is_authenticated:
        memberships = SimpleLazyObject(lambda: memberships_of(user_id=user.pk))
    return {"portal": getattr(request, "portal", None), "portal_memberships": memberships}
