"""The portal's notification pages: activity with receipts, subscribers, the quickstart (send a test).

Thin like portal.views: portal.access checks membership before any tenant schema is activated; each view
then activates its organisation's schema itself and calls notifications' selectors and services.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_tenants.utils import tenant_context

from herald.problems import Problem
from notifications import selectors, services
from notifications.models import Subscriber
from notifications.presence import sockets_open
from notifications.proofs import signing_secrets_live, subscriber_hash, subscriber_id_valid
from notifications.widget import WIDGET_URL_PATH, widget_integrity, widget_snippet
from portal.access import client_ip, organization_view, portal_context
from portal.permissions import Action
from portal.selectors import key_state
from tenants.keys import key_hash
from tenants.models import ApiKey, Organization
from tenants.origins import origin_allowed
from tenants.services import api_key_create

ACTIVITY_PAGE = 25
RECIPIENTS_PAGE = 50
SUBSCRIBERS_PAGE = 50
INBOX_PAGE = 20
PREVIEW_SUBSCRIBER = "portal-preview"
PREVIEW_KEY_NAME = "Portal preview"


def _session_key(organization: Organization) -> str:
    return f"portal.preview-key.{organization.pk}"


# --- activity ----------------------------------------------------------------------------------


class ActivityFilterForm(forms.Form):
    subscriber = forms.CharField(max_length=255, required=False, label="Subscriber id")
    category = forms.CharField(max_length=100, required=False, label="Category")
    topic = forms.CharField(max_length=100, required=False, label="Topic")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    cursor = forms.CharField(max_length=200, required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end of the range comes before its start.")
        return data


@organization_view(Action.VIEW)
@require_GET
def activity(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/activity/: the messages sent, newest first, with their receipts; filters and cursor pages."""
    ctx = portal_context(request)
    form = ActivityFilterForm(request.GET or None)
    page = None
    status = 200
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        data = form.cleaned_data if form.is_bound else {}
        filters = selectors.ActivityFilter(
            subscriber_id=(data.get("subscriber") or "").strip() or None,
            category=(data.get("category") or "").strip() or None,
            topic=(data.get("topic") or "").strip() or None,
            since=data.get("since"),
            until=data.get("until"),
        )
        with tenant_context(ctx.organization):
            try:
                page = selectors.activity_page(filters=filters, cursor=data.get("cursor") or None, limit=ACTIVITY_PAGE)
            except Problem:
                form.add_error(None, "That page link is not valid any more: start from the newest messages.")
                status = 400
    next_query = None
    if page is not None and page.next_cursor:
        query = request.GET.copy()
        query["cursor"] = page.next_cursor
        next_query = query.urlencode()
    return render(
        request,
        "portal/activity.html",
        {"section": "activity", "form": form, "page": page, "next_query": next_query, "filtered": form.is_bound},
        status=status,
    )


@organization_view(Action.VIEW)
@require_GET
def activity_message(request: HttpRequest, message_id: uuid.UUID) -> HttpResponse:
    """/o/<slug>/activity/<message id>: one message, its counts and every recipient's receipts."""
    ctx = portal_context(request)
    with tenant_context(ctx.organization):
        found = selectors.message_activity_get(message_id=str(message_id))
        if found is None:
            raise Http404("No such message")
        try:
            recipients = selectors.message_recipients_page(
                message_id=found.message.pk, cursor=request.GET.get("cursor") or None, limit=RECIPIENTS_PAGE
            )
        except Problem:
            raise Http404("No such page of recipients") from None
    return render(
        request,
        "portal/activity_message.html",
        {"section": "activity", "activity": found, "recipients": recipients},
    )


# --- subscribers -------------------------------------------------------------------------------


@organization_view(Action.VIEW)
@require_GET
def subscribers(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/subscribers/: search by id or e-mail."""
    ctx = portal_context(request)
    query = request.GET.get("q", "")[:255]
    status = 200
    with tenant_context(ctx.organization):
        try:
            page = selectors.subscribers_search(
                query=query, cursor=request.GET.get("cursor") or None, limit=SUBSCRIBERS_PAGE
            )
        except Problem:
            page = selectors.subscribers_search(query=query, cursor=None, limit=SUBSCRIBERS_PAGE)
            status = 400
    next_query = None
    if page.next_cursor:
        params = request.GET.copy()
        params["cursor"] = page.next_cursor
        next_query = params.urlencode()
    return render(
        request,
        "portal/subscribers.html",
        {"section": "subscribers", "page": page, "query": query, "next_query": next_query},
        status=status,
    )


def _subscriber_for_member(request: HttpRequest, subscriber_pk: int) -> Subscriber:
    """The subscriber `subscriber_pk` of the request's organisation (its schema active), or 404."""
    subscriber = Subscriber.objects.filter(pk=subscriber_pk).first()
    if subscriber is None:
        raise Http404("No such subscriber")
    return subscriber


@organization_view(Action.VIEW)
@require_GET
def subscriber(request: HttpRequest, subscriber_pk: int) -> HttpResponse:
    """/o/<slug>/subscribers/<pk>: profile, inbox, topics, preferences and the sockets open now."""
    ctx = portal_context(request)
    with tenant_context(ctx.organization):
        found = _subscriber_for_member(request, subscriber_pk)
        try:
            inbox = selectors.inbox_page(
                subscriber_pk=found.pk, cursor=request.GET.get("cursor") or None, limit=INBOX_PAGE, archived=None
            )
        except Problem:
            raise Http404("No such page of the inbox") from None
        topics = selectors.subscriber_topics(subscriber_pk=found.pk)
        preferences = selectors.preferences_get(subscriber_pk=found.pk)
        unread = selectors.unread_count(subscriber_pk=found.pk)
    return render(
        request,
        "portal/subscriber.html",
        {
            "section": "subscribers",
            "subscriber": found,
            "inbox": inbox,
            "topics": topics,
            "preferences": sorted(preferences.items()),
            "unread": unread,
            "sockets": sockets_open(organization_id=ctx.organization.pk, subscriber_pk=found.pk),
        },
    )


@organization_view(Action.SUBSCRIBERS_ERASE)
@require_http_methods(["GET", "POST"])
def subscriber_erase(request: HttpRequest, subscriber_pk: int) -> HttpResponse:
    """/o/<slug>/subscribers/<pk>/erase: confirm, then erase the subscriber with its inbox and preferences."""
    ctx = portal_context(request)
    with tenant_context(ctx.organization):
        found = _subscriber_for_member(request, subscriber_pk)
        if request.method == "POST":
            services.subscriber_delete(external_id=found.external_id)
            messages.success(request, f"Subscriber {found.external_id} and their inbox were erased.")
            return redirect("portal:subscribers", ctx.organization.slug)
    return render(request, "portal/subscriber_erase.html", {"section": "subscribers", "subscriber": found})


# --- quickstart: send a test -------------------------------------------------------------------


class TestSendForm(forms.Form):
    subscriber_id = forms.CharField(max_length=255, label="Subscriber id", initial=PREVIEW_SUBSCRIBER)
    title = forms.CharField(max_length=500, label="Title", initial="Hello from Herald")
    body = forms.CharField(
        max_length=5000, required=False, label="Body", widget=forms.Textarea(attrs={"rows": 3}), initial=""
    )

    def clean_subscriber_id(self) -> str:
        value = str(self.cleaned_data["subscriber_id"]).strip()
        if not subscriber_id_valid(value):
            raise forms.ValidationError("A subscriber id is 1 to 255 characters.")
        return value


def _portal_origin(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


def _preview_key(request: HttpRequest, organization: Organization) -> str | None:
    """The live publishable key this browser session started the preview with, if it still works here."""
    key = request.session.get(_session_key(organization))
    if not isinstance(key, str):
        return None
    found = ApiKey.objects.filter(organization=organization, kind="publishable", key_hash=key_hash(key)).first()
    if found is None or key_state(found) == "revoked" or key_state(found) == "expired":
        return None
    if not origin_allowed(_portal_origin(request), list(found.allowed_origins)):
        return None
    return key


@dataclass(frozen=True)
class Snippets:
    curl: str
    python: str
    javascript: str
    widget: str


def _snippets(base: str, publishable_key: str, subscriber_id: str) -> Snippets:
    quoted = json.dumps(subscriber_id)  # a JSON (and JavaScript) string literal
    curl = (
        f"curl {base}/v1/notifications \\\n"
        '  -H "Authorization: Bearer $HERALD_SECRET_KEY" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        "  -d '" + f'{{"to": [{quoted}], "title": "Hello", "body": "Sent with curl"}}'.replace("'", "'\\''") + "'"
    )
    python = (
        "import hashlib, hmac, os\n\nimport httpx\n\n"
        '# sk_live_…: keep it on your servers only\nSECRET_KEY = os.environ["HERALD_SECRET_KEY"]\n'
        f"httpx.post(\n    {base + '/v1/notifications'!r},\n"
        '    headers={"Authorization": f"Bearer {SECRET_KEY}"},\n'
        f'    json={{"to": [{subscriber_id!r}], "title": "Hello", "body": "Sent from Python"}},\n'
        ").raise_for_status()\n\n"
        "# The subscriber hash your backend gives the widget:\n"
        'signing_secret = os.environ["HERALD_SIGNING_SECRET"]\n'
        f"subscriber_hash = hmac.new(signing_secret.encode(), {subscriber_id!r}.encode(), hashlib.sha256).hexdigest()"
    )
    javascript = (
        "// Server (Node 18+): the secret key never reaches a browser.\n"
        f'await fetch("{base}/v1/notifications", {{\n'
        '  method: "POST",\n'
        "  headers: {\n"
        "    Authorization: `Bearer ${process.env.HERALD_SECRET_KEY}`,\n"
        '    "Content-Type": "application/json",\n'
        "  },\n"
        f'  body: JSON.stringify({{to: [{quoted}], title: "Hello", body: "Sent from JavaScript"}}),\n'
        "});\n\n"
        "// Browser: the inbox widget with your publishable key.\n"
        'const inbox = document.createElement("herald-inbox");\n'
        f'inbox.setAttribute("publishable-key", "{publishable_key}");\n'
        f'inbox.setAttribute("subscriber-id", {quoted});\n'
        'inbox.setAttribute("subscriber-hash", subscriberHashFromYourBackend);\n'
        "document.body.append(inbox);"
    )
    widget = widget_snippet(base_url=base, publishable_key=publishable_key)
    return Snippets(curl=curl, python=python, javascript=javascript, widget=widget)


def _content_security_policy(request: HttpRequest) -> str:
    """The portal's policy, with this host's WebSocket named for the widget (as the demo page does)."""
    ws = "wss" if request.is_secure() else "ws"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self' {ws}://{request.get_host()}",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
            "object-src 'none'",
        ]
    )


def _quickstart(request: HttpRequest, form: TestSendForm, status: int = 200) -> HttpResponse:
    ctx = portal_context(request)
    base = _portal_origin(request)
    preview_key = _preview_key(request, ctx.organization)
    wanted = request.GET.get("subscriber") or (form.data.get("subscriber_id") if form.is_bound else None)
    subscriber_id = str(wanted).strip() if wanted and subscriber_id_valid(str(wanted).strip()) else PREVIEW_SUBSCRIBER
    if not form.is_bound:
        form.initial["subscriber_id"] = subscriber_id
    secrets = signing_secrets_live(ctx.organization.pk)
    preview_hash = subscriber_hash(secrets[0], subscriber_id) if preview_key and secrets else None
    with tenant_context(ctx.organization):
        known = selectors.subscribers_search(query="", cursor=None, limit=20).items
    response = render(
        request,
        "portal/quickstart.html",
        {
            "section": "quickstart",
            "form": form,
            "preview_key": preview_key,
            "preview_subscriber": subscriber_id,
            "preview_hash": preview_hash,
            "widget_url": WIDGET_URL_PATH,
            "integrity": widget_integrity(),
            "snippets": _snippets(base, preview_key or "pk_live_…", subscriber_id),
            "known_subscribers": known,
        },
        status=status,
    )
    response["Content-Security-Policy"] = _content_security_policy(request)
    return response


@organization_view(Action.VIEW)
@require_GET
def quickstart(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/quickstart: send a test to a subscriber and watch it arrive in a live widget; code snippets."""
    return _quickstart(request, TestSendForm())


@organization_view(Action.KEYS_MANAGE)
@require_POST
def quickstart_preview(request: HttpRequest) -> HttpResponse:
    """POST /o/<slug>/quickstart/preview: issue a publishable key for this page's origin to run the preview."""
    ctx = portal_context(request)
    issued = api_key_create(
        organization=ctx.organization,
        kind="publishable",
        name=PREVIEW_KEY_NAME,
        allowed_origins=[_portal_origin(request)],
        actor=request.user,  # type: ignore[arg-type]
        ip=client_ip(request),
    )
    # Only this browser session holds the full key: Herald stores keys as hashes.
    request.session[_session_key(ctx.organization)] = issued.key
    messages.success(request, f"Live preview started with a new publishable key {issued.api_key.prefix}….")
    return redirect("portal:quickstart", ctx.organization.slug)


@organization_view(Action.TEST_SEND)
@require_POST
def quickstart_send(request: HttpRequest) -> HttpResponse:
    """POST /o/<slug>/quickstart/send: one test notification through the send service the API uses."""
    ctx = portal_context(request)
    form = TestSendForm(request.POST)
    htmx = request.headers.get("HX-Request") == "true"
    if not form.is_valid():
        if htmx:
            return render(request, "portal/_test_sent.html", {"form": form}, status=400)
        return _quickstart(request, form, status=400)
    from notifications.sending import NotificationDraft, Sender, notification_send_blocking

    draft = NotificationDraft(
        title=form.cleaned_data["title"],
        body=form.cleaned_data["body"],
        to=[form.cleaned_data["subscriber_id"]],
        category="test",
    )
    sender = Sender(
        organization_id=ctx.organization.pk, schema_name=ctx.organization.schema_name, plan=ctx.organization.plan
    )
    answer = notification_send_blocking(sender=sender, draft=draft)
    result = SimpleNamespace(**answer.body) if answer.status == 202 else None
    if result is None:
        form.add_error(None, str(answer.body.get("detail") or answer.body.get("title") or "the send was refused"))
        if htmx:
            return render(request, "portal/_test_sent.html", {"form": form}, status=answer.status)
        return _quickstart(request, form, status=answer.status)
    if htmx:
        return render(request, "portal/_test_sent.html", {"form": form, "result": result})
    messages.success(request, f"Sent {result.id} to {form.cleaned_data['subscriber_id']}.")
    url = reverse("portal:quickstart", args=[ctx.organization.slug])
    return redirect(f"{url}?subscriber={form.cleaned_data['subscriber_id']}")
