"""Who may open an organisation's pages: the membership check, made before any tenant schema is activated.

`organization_view(action)` wraps every view under /o/<slug>/: anonymous users go to the sign-in page; a user
who is not a member gets 404 (never 403, so slugs cannot be probed); a member whose role does not allow
`action` gets 403. The view receives the organisation and membership on `request.portal`; it activates the
tenant schema itself (`with tenant_context(request.portal.organization):`) when it needs tenant rows.
Objects named in a URL are fetched through helpers that check the organisation in the same query.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from portal.permissions import Action, role_allows
from tenants.models import ApiKey, Membership, Organization
from tenants.resolve import organization_for_member

P = ParamSpec("P")


@dataclass(frozen=True)
class PortalContext:
    """The organisation a portal request is about, and the signed-in user's membership of it."""

    organization: Organization
    membership: Membership

    @property
    def role(self) -> str:
        return self.membership.role

    def allows(self, action: Action | str) -> bool:
        return role_allows(self.membership.role, Action(action))

    @property
    def can(self) -> dict[str, bool]:
        """For templates: {% if portal.can.keys_manage %} (every Action by its lower-case name)."""
        return {action.name.lower(): self.allows(action) for action in Action}


def portal_context(request: HttpRequest) -> PortalContext:
    """The PortalContext organization_view put on the request."""
    return request.portal  # type: ignore[attr-defined,no-any-return]


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the server saw it (uvicorn puts a trusted proxy's X-Forwarded-For there)."""
    return request.META.get("REMOTE_ADDR") or None


def organization_view(
    action: Action,
) -> Callable[[Callable[Concatenate[HttpRequest, P], HttpResponse]], Callable[..., HttpResponse]]:
    """Require a signed-in member of the URL's organisation whose role allows `action`."""

    def decorator(view: Callable[Concatenate[HttpRequest, P], HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            found = organization_for_member(slug=slug, user_id=request.user.pk)
            if found is None:
                raise Http404("No such organisation")
            organization, membership = found
            context = PortalContext(organization=organization, membership=membership)
            request.portal = context  # type: ignore[attr-defined]
            if not context.allows(action):
                raise PermissionDenied(f"Your role ({membership.role}) cannot do this")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def api_key_for_member(request: HttpRequest, key_id: int) -> ApiKey:
    """The organisation's key `key_id`, or 404 (another organisation's key id is just as unknown)."""
    key = ApiKey.objects.filter(organization=portal_context(request).organization, pk=key_id).first()
    if key is None:
        raise Http404("No such key")
    return key


def membership_for_member(request: HttpRequest, membership_id: int) -> Membership:
    """The organisation's membership `membership_id`, or 404."""
    membership = (
        Membership.objects.select_related("user")
        .filter(organization=portal_context(request).organization, pk=membership_id)
        .first()
    )
    if membership is None:
        raise Http404("No such member")
    return membership
