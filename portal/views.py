"""The portal's pages. Thin: check who is asking (portal.access), validate the form, call one service."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.access import (
    api_key_for_member,
    client_ip,
    membership_for_member,
    organization_view,
    portal_context,
)
from portal.forms import (
    InviteForm,
    KeyCreateForm,
    KeyOriginsForm,
    KeyRollForm,
    OrganizationForm,
    OrganizationSettingsForm,
    RoleForm,
    SigningSecretRotateForm,
)
from portal.invites import invitation_email_send, invitation_id_from_token
from portal.permissions import Action, may_manage_member, roles_assignable_by
from portal.selectors import (
    AUDIT_PAGE,
    api_keys_of,
    audit_entries,
    key_state,
    members_of,
    memberships_of,
    pending_invitations_of,
)
from tenants.models import AuditEntry, Invitation, Membership
from tenants.services import (
    SlugTakenError,
    api_key_create,
    api_key_origins_set,
    api_key_revoke,
    api_key_roll,
    invitation_accept,
    invitation_revoke,
    membership_invite,
    membership_remove,
    membership_role_change,
    organization_create,
    organization_delete,
    organization_rename,
    signing_secret_reveal,
    signing_secret_rotate,
    slug_validate,
)

LAST_ORGANIZATION = "portal.organization"


def _errors(error: ValidationError) -> str:
    return " ".join(error.messages)


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


# --- front door and organisations ------------------------------------------------------------


@require_GET
def front_door(request: HttpRequest) -> HttpResponse:
    """/: sign in or up when signed out; your (last) organisation when signed in; a new one when you have none."""
    if not request.user.is_authenticated:
        return render(request, "portal/front.html")
    memberships = memberships_of(user_id=request.user.pk)
    if not memberships:
        return redirect("portal:organization-new")
    last = request.session.get(LAST_ORGANIZATION)
    chosen = next((m for m in memberships if m.organization.slug == last), memberships[0])
    return redirect("portal:overview", chosen.organization.slug)


def _free_slug(name: str) -> str:
    base = slugify(name)[:50].strip("-") or "org"
    if not base[0].isalpha():
        base = "org-" + base
    candidates = [base] + [f"{base}-{secrets.token_hex(2)}" for _ in range(5)]
    for candidate in candidates:
        try:
            slug_validate(candidate)
        except ValidationError:
            continue
        from tenants.models import Organization

        if not Organization.objects.filter(slug=candidate).exists():
            return candidate
    return f"org-{secrets.token_hex(4)}"


@require_http_methods(["GET", "POST"])
def organization_new(request: HttpRequest) -> HttpResponse:
    """/new: create an organisation (provisioned by organization_create) and land in it."""
    if not request.user.is_authenticated:
        from django.contrib.auth.views import redirect_to_login

        return redirect_to_login(request.get_full_path())
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        slug = form.cleaned_data["slug"] or _free_slug(form.cleaned_data["name"])
        try:
            organization = organization_create(
                name=form.cleaned_data["name"],
                slug=slug,
                owner=request.user,
                ip=client_ip(request),  # type: ignore[arg-type]
            )
        except SlugTakenError:
            form.add_error("slug", "That URL name is taken; choose another.")
        except ValidationError as error:
            form.add_error("slug", _errors(error))
        else:
            if organization.memberships.filter(user=request.user, role=Membership.Role.OWNER).exists():
                return redirect("portal:overview", organization.slug)
            form.add_error("slug", "That URL name is taken; choose another.")
    first = not memberships_of(user_id=request.user.pk)
    return render(request, "portal/organization_new.html", {"form": form, "first": first})


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """/invite/<token>: see who invites you to what, sign in or up, accept."""
    invitation_id = invitation_id_from_token(token)
    found = (
        Invitation.objects.select_related("organization", "invited_by").filter(pk=invitation_id).first()
        if invitation_id is not None
        else None
    )
    if found is None:
        return render(request, "portal/invitation.html", {"problem": "expired"}, status=404)
    if found.accepted_at is not None or found.revoked_at is not None:
        return render(request, "portal/invitation.html", {"problem": "used", "invitation": found}, status=410)
    context = {"invitation": found, "token": token, "next": request.get_full_path()}
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect(f"{reverse('account_login')}?next={request.path}")
        try:
            membership = invitation_accept(invitation_id=found.pk, user=request.user, ip=client_ip(request))  # type: ignore[arg-type]
        except ValidationError as error:
            context["error"] = _errors(error)
            return render(request, "portal/invitation.html", context, status=400)
        messages.success(request, f"Welcome to {membership.organization.name}.")
        return redirect("portal:overview", membership.organization.slug)
    return render(request, "portal/invitation.html", context)


@organization_view(Action.VIEW)
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/: the organisation at a glance."""
    ctx = portal_context(request)
    request.session[LAST_ORGANIZATION] = ctx.organization.slug
    keys = api_keys_of(organization=ctx.organization)
    live = [k for k in keys if key_state(k) in ("live", "expiring")]
    return render(
        request,
        "portal/overview.html",
        {
            "section": "overview",
            "secret_keys": sum(1 for k in live if k.kind == "secret"),
            "publishable_keys": sum(1 for k in live if k.kind == "publishable"),
            "members": Membership.objects.filter(organization=ctx.organization).count(),
        },
    )


# --- keys ----------------------------------------------------------------------------------------


@organization_view(Action.VIEW)
@require_GET
def keys(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/keys/: every key with its state; create, roll, revoke; the signing secret."""
    ctx = portal_context(request)
    rows = [(key, key_state(key)) for key in api_keys_of(organization=ctx.organization)]
    return render(request, "portal/keys.html", {"section": "keys", "rows": rows, "form": KeyCreateForm()})


@organization_view(Action.KEYS_MANAGE)
@require_http_methods(["GET", "POST"])
def key_create(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/keys/new: issue a key; the full key is shown on this answer only."""
    ctx = portal_context(request)
    form = KeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            issued = api_key_create(
                organization=ctx.organization,
                kind=form.cleaned_data["kind"],
                name=form.cleaned_data["name"],
                allowed_origins=form.cleaned_data["allowed_origins"],
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as error:
            form.add_error("allowed_origins", _errors(error))
        else:
            return _no_store(
                render(request, "portal/key_issued.html", {"section": "keys", "issued": issued, "action": "created"})
            )
    return render(request, "portal/key_new.html", {"section": "keys", "form": form}, status=400 if form.errors else 200)


@organization_view(Action.KEYS_MANAGE)
@require_http_methods(["GET", "POST"])
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    """/o/<slug>/keys/<id>/revoke: confirm, then revoke at once."""
    key = api_key_for_member(request, key_id)
    if request.method == "POST":
        api_key_revoke(api_key=key, actor=request.user, ip=client_ip(request))
        messages.success(request, f"Key {key.prefix}… revoked. Calls with it are refused from now on.")
        return redirect("portal:keys", portal_context(request).organization.slug)
    return render(request, "portal/key_revoke.html", {"section": "keys", "key": key, "state": key_state(key)})


@organization_view(Action.KEYS_MANAGE)
@require_http_methods(["GET", "POST"])
def key_roll(request: HttpRequest, key_id: int) -> HttpResponse:
    """/o/<slug>/keys/<id>/roll: issue a replacement; the old key lives for the chosen grace period."""
    key = api_key_for_member(request, key_id)
    form = KeyRollForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            issued = api_key_roll(
                api_key=key,
                grace=timedelta(seconds=form.cleaned_data["grace"]),
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as error:
            form.add_error(None, _errors(error))
        else:
            return _no_store(
                render(
                    request,
                    "portal/key_issued.html",
                    {"section": "keys", "issued": issued, "action": "rolled", "old": key},
                )
            )
    status = 400 if form.errors else 200
    return render(request, "portal/key_roll.html", {"section": "keys", "key": key, "form": form}, status=status)


@organization_view(Action.KEYS_MANAGE)
@require_http_methods(["GET", "POST"])
def key_origins(request: HttpRequest, key_id: int) -> HttpResponse:
    """/o/<slug>/keys/<id>/origins: the web origins a publishable key may be used from."""
    key = api_key_for_member(request, key_id)
    if key.kind != "publishable":
        raise Http404("Only publishable keys have allowed origins")
    form = KeyOriginsForm(request.POST or None, initial={"allowed_origins": "\n".join(key.allowed_origins)})
    if request.method == "POST" and form.is_valid():
        try:
            api_key_origins_set(
                api_key=key,
                allowed_origins=form.cleaned_data["allowed_origins"],
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as error:
            form.add_error("allowed_origins", _errors(error))
        else:
            messages.success(request, f"Allowed origins of {key.prefix}… saved.")
            return redirect("portal:keys", portal_context(request).organization.slug)
    status = 400 if form.errors else 200
    return render(request, "portal/key_origins.html", {"section": "keys", "key": key, "form": form}, status=status)


@organization_view(Action.SIGNING_SECRET_REVEAL)
@require_POST
def signing_secret_show(request: HttpRequest) -> HttpResponse:
    """POST /o/<slug>/keys/signing-secret: the current signing secret (htmx swaps it in; the read is audited)."""
    secret = signing_secret_reveal(
        organization=portal_context(request).organization, actor=request.user, ip=client_ip(request)
    )
    template = "portal/_signing_secret.html" if request.htmx else "portal/signing_secret.html"  # type: ignore[attr-defined]
    return _no_store(render(request, template, {"section": "keys", "secret": secret}))


@organization_view(Action.SIGNING_SECRET_ROTATE)
@require_http_methods(["GET", "POST"])
def signing_secret_rotation(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/keys/signing-secret/rotate: a new secret; the current one works for the chosen overlap."""
    form = SigningSecretRotateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        signing_secret_rotate(
            organization=portal_context(request).organization,
            overlap=timedelta(seconds=form.cleaned_data["overlap"]),
            actor=request.user,
            ip=client_ip(request),
        )
        messages.success(request, "Signing secret rotated. Reveal it to update your backend.")
        return redirect("portal:keys", portal_context(request).organization.slug)
    status = 400 if form.errors else 200
    return render(request, "portal/signing_secret_rotate.html", {"section": "keys", "form": form}, status=status)


# --- members ------------------------------------------------------------------------------------


def _members_page(request: HttpRequest, invite_form: InviteForm | None = None, status: int = 200) -> HttpResponse:
    ctx = portal_context(request)
    assignable = roles_assignable_by(ctx.role)
    rows = []
    for membership in members_of(organization=ctx.organization):
        manageable = may_manage_member(ctx.role, membership.role) and membership.user_id != request.user.pk
        rows.append((membership, manageable, RoleForm(roles=assignable, initial={"role": membership.role})))
    return render(
        request,
        "portal/members.html",
        {
            "section": "members",
            "rows": rows,
            "invitations": pending_invitations_of(organization=ctx.organization).select_related("invited_by"),
            "invite_form": invite_form or InviteForm(roles=assignable),
            "can_manage": ctx.allows(Action.MEMBERS_MANAGE),
        },
        status=status,
    )


@organization_view(Action.VIEW)
@require_GET
def members(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/members/: who is in the organisation, pending invitations, invite."""
    return _members_page(request)


@organization_view(Action.MEMBERS_MANAGE)
@require_POST
def member_invite(request: HttpRequest) -> HttpResponse:
    """POST /o/<slug>/members/invite: record the invitation and e-mail its signed link."""
    ctx = portal_context(request)
    form = InviteForm(request.POST, roles=roles_assignable_by(ctx.role))
    if not form.is_valid():
        return _members_page(request, form, status=400)
    base_url = f"{request.scheme}://{request.get_host()}"
    try:
        with transaction.atomic():
            invited = membership_invite(
                organization=ctx.organization,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor=request.user,
                ip=client_ip(request),
            )
            transaction.on_commit(lambda: invitation_email_send(invitation=invited, base_url=base_url))
    except ValidationError as error:
        form.add_error("email", _errors(error))
        return _members_page(request, form, status=400)
    messages.success(request, f"Invitation sent to {invited.email}.")
    return redirect("portal:members", ctx.organization.slug)


@organization_view(Action.MEMBERS_MANAGE)
@require_POST
def invitation_withdraw(request: HttpRequest, invitation_id: int) -> HttpResponse:
    """POST /o/<slug>/members/invitations/<id>/withdraw: the link stops working."""
    ctx = portal_context(request)
    found = pending_invitations_of(organization=ctx.organization).filter(pk=invitation_id).first()
    if found is None:
        raise Http404("No such invitation")
    invitation_revoke(invitation=found, actor=request.user, ip=client_ip(request))
    messages.success(request, f"Invitation of {found.email} withdrawn.")
    return redirect("portal:members", ctx.organization.slug)


@organization_view(Action.MEMBERS_MANAGE)
@require_POST
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    """POST /o/<slug>/members/<id>/role: give a member another role (never above your own)."""
    ctx = portal_context(request)
    target = membership_for_member(request, membership_id)
    form = RoleForm(request.POST, roles=roles_assignable_by(ctx.role))
    if not may_manage_member(ctx.role, target.role) or not form.is_valid():
        messages.error(request, "You cannot give that role to that member.")
        return _members_page(request, status=403 if form.is_valid() else 400)
    try:
        membership_role_change(
            membership=target, role=form.cleaned_data["role"], actor=request.user, ip=client_ip(request)
        )
    except ValidationError as error:
        messages.error(request, _errors(error))
        return _members_page(request, status=400)
    messages.success(request, f"{target.user.email or target.user.get_username()} is now {form.cleaned_data['role']}.")
    return redirect("portal:members", ctx.organization.slug)


@organization_view(Action.VIEW)
@require_http_methods(["GET", "POST"])
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    """/o/<slug>/members/<id>/remove: confirm, then remove a member (or leave, for your own membership)."""
    ctx = portal_context(request)
    target = membership_for_member(request, membership_id)
    leaving = target.user_id == request.user.pk
    if not leaving and not may_manage_member(ctx.role, target.role):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("Your role cannot remove this member")
    error = None
    if request.method == "POST":
        try:
            membership_remove(membership=target, actor=request.user, ip=client_ip(request))
        except ValidationError as refused:
            error = _errors(refused)
        else:
            if leaving:
                messages.success(request, f"You left {ctx.organization.name}.")
                return redirect("portal:front")
            messages.success(request, f"{target.user.email or target.user.get_username()} was removed.")
            return redirect("portal:members", ctx.organization.slug)
    return render(
        request,
        "portal/member_remove.html",
        {"section": "members", "target": target, "leaving": leaving, "error": error},
        status=400 if error else 200,
    )


# --- audit log and settings ------------------------------------------------------------------------


@organization_view(Action.VIEW)
@require_GET
def audit(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/audit/: who did what, when, from where; filtered by actor and action, 50 a page."""
    ctx = portal_context(request)

    def number(name: str) -> int | None:
        value = request.GET.get(name, "")
        return int(value) if value.isdigit() and len(value) < 19 else None

    action = request.GET.get("action", "")
    if action not in AuditEntry.Action.values:
        action = ""
    entries = audit_entries(
        organization=ctx.organization, actor_id=number("actor"), action=action or None, before_id=number("before")
    )
    more = len(entries) > AUDIT_PAGE
    entries = entries[:AUDIT_PAGE]
    return render(
        request,
        "portal/audit.html",
        {
            "section": "audit",
            "entries": entries,
            "next_before": entries[-1].pk if more else None,
            "actors": members_of(organization=ctx.organization),
            "actions": AuditEntry.Action.choices,
            "chosen_actor": number("actor"),
            "chosen_action": action,
        },
    )


@organization_view(Action.VIEW)
@require_http_methods(["GET", "POST"])
def organization_settings(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/settings/: the organisation's name; deleting it (owners)."""
    ctx = portal_context(request)
    form = OrganizationSettingsForm(request.POST or None, initial={"name": ctx.organization.name})
    if request.method == "POST":
        if not ctx.allows(Action.SETTINGS_CHANGE):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("Your role cannot change the organisation's settings")
        if form.is_valid():
            try:
                organization_rename(
                    organization=ctx.organization,
                    name=form.cleaned_data["name"],
                    actor=request.user,
                    ip=client_ip(request),
                )
            except ValidationError as error:
                form.add_error("name", _errors(error))
            else:
                messages.success(request, "Settings saved.")
                return redirect("portal:settings", ctx.organization.slug)
    return render(
        request,
        "portal/settings.html",
        {
            "section": "settings",
            "form": form,
            "can_change": ctx.allows(Action.SETTINGS_CHANGE),
            "can_delete": ctx.allows(Action.ORGANIZATION_DELETE),
        },
        status=400 if form.errors else 200,
    )


@organization_view(Action.ORGANIZATION_DELETE)
@require_http_methods(["GET", "POST"])
def organization_remove(request: HttpRequest) -> HttpResponse:
    """/o/<slug>/settings/delete: type the URL name to confirm; everything of the organisation goes."""
    ctx = portal_context(request)
    error = None
    if request.method == "POST":
        if request.POST.get("confirm", "").strip() != ctx.organization.slug:
            error = f"Type {ctx.organization.slug} to confirm."
        else:
            name = ctx.organization.name
            organization_delete(organization=ctx.organization)
            request.session.pop(LAST_ORGANIZATION, None)
            messages.success(request, f"{name} was deleted.")
            return HttpResponseRedirect(reverse("portal:front"))
    return render(
        request,
        "portal/organization_delete.html",
        {"section": "settings", "error": error},
        status=400 if error else 200,
    )
