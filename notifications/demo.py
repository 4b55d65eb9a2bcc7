"""The dev-only demo page: the inbox widget for the demo organisation and a send button.

Everything here answers 404 unless HERALD_ENV is `development`. The page acts
as a customer's app would: it computes the demo subscriber's hash on the
server and embeds only the publishable key and that hash; the secret key stays
on the server, where `/demo/send` uses it to call Herald's own API for the
demo subscriber (same-origin, CSRF-checked).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from notifications.widget import WIDGET_URL_PATH, widget_integrity, widget_snippet

DEMO_ASSETS = {"demo.js": "text/javascript; charset=utf-8", "demo.css": "text/css; charset=utf-8"}


def demo_enabled() -> bool:
    """The demo exists in development only."""
    return settings.HERALD_ENV == "development"


def demo_state() -> dict[str, str]:
    """The demo keys `herald dev` wrote (demo_ensure), or 404 when there are none."""
    if not demo_enabled():
        raise Http404("the demo runs in development only")
    try:
        state = json.loads((Path(settings.HERALD_DATA_DIR) / "demo.json").read_text())
    except (FileNotFoundError, ValueError):
        raise Http404("no demo organisation yet: start Herald with `herald dev`") from None
    if not all(state.get(key) for key in ("slug", "secret_key", "publishable_key", "subscriber_id")):
        raise Http404("the demo state is incomplete: restart `herald dev`")
    return state


def demo_subscriber_hash(slug: str, subscriber_id: str) -> str:
    """What a customer's backend computes: hex HMAC-SHA256(signing secret, subscriber id)."""
    from notifications.proofs import subscriber_hash
    from tenants.models import Organization
    from tenants.selectors import signing_secrets_live

    organization_id = Organization.objects.filter(slug=slug).values_list("pk", flat=True).first()
    secrets = signing_secrets_live(organization_id) if organization_id is not None else []
    if not secrets:
        raise Http404("the demo organisation has no signing secret")
    return subscriber_hash(secrets[0], subscriber_id)


def _content_security_policy(request: HttpRequest) -> str:
    host = request.get_host()
    ws = "wss" if request.is_secure() else "ws"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {ws}://{host}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@require_GET
def demo_page(request: HttpRequest) -> HttpResponse:
    """GET /demo/: the demo app page with the widget, under a strict CSP."""
    state = demo_state()
    base = f"{request.scheme}://{request.get_host()}"
    response = render(
        request,
        "herald/demo.html",
        {
            "slug": state["slug"],
            "publishable_key": state["publishable_key"],
            "subscriber_id": state["subscriber_id"],
            "subscriber_hash": demo_subscriber_hash(state["slug"], state["subscriber_id"]),
            "widget_url": WIDGET_URL_PATH,
            "integrity": widget_integrity(),
            "snippet": widget_snippet(base_url=base, publishable_key=state["publishable_key"]),
        },
    )
    response["Content-Security-Policy"] = _content_security_policy(request)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def demo_asset(request: HttpRequest, name: str) -> HttpResponse:
    """GET /demo/demo.js and /demo/demo.css."""
    demo_state()
    if name not in DEMO_ASSETS:
        raise Http404(name)
    body = resources.files("notifications").joinpath("static/herald/demo", name).read_bytes()
    response = HttpResponse(body, content_type=DEMO_ASSETS[name])
    response["Cache-Control"] = "no-cache"
    return response


@require_POST
def demo_send(request: HttpRequest) -> JsonResponse:
    """POST /demo/send: one test notification to the demo subscriber, as the demo's backend would send it."""
    from notifications.sending import NotificationDraft, Sender, notification_send_blocking
    from tenants.models import Organization

    state = demo_state()
    try:
        wanted: Any = json.loads(request.body or b"{}")
    except ValueError:
        wanted = {}
    title = str(wanted.get("title") or "") if isinstance(wanted, dict) else ""
    organization = Organization.objects.filter(slug=state["slug"]).first()
    if organization is None:
        raise Http404("no demo organisation yet: start Herald with `herald dev`")
    draft = NotificationDraft(
        title=title.strip()[:200] or "Hello from the Herald demo",
        to=[state["subscriber_id"]],
        body=f"Sent from the demo page at {timezone.now():%H:%M:%S} UTC.",
        action_url=f"{request.scheme}://{request.get_host()}/demo/#sent",
        category="demo",
    )
    sender = Sender(organization_id=organization.pk, schema_name=organization.schema_name, plan=organization.plan)
    answer = notification_send_blocking(sender=sender, draft=draft)
    return JsonResponse(answer.body, status=answer.status)
