"""The portal's URLs: the front door, new organisations, invitations, and every page under /o/<slug>/."""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.views import serve as static_serve
from django.urls import include, path, re_path

from portal import billing_views, notification_views, usage_views, views

app_name = "portal"

organization_patterns = [
    path("", views.overview, name="overview"),
    path("keys/", views.keys, name="keys"),
    path("keys/new", views.key_create, name="key-create"),
    path("keys/<int:key_id>/revoke", views.key_revoke, name="key-revoke"),
    path("keys/<int:key_id>/roll", views.key_roll, name="key-roll"),
    path("keys/<int:key_id>/origins", views.key_origins, name="key-origins"),
    path("keys/signing-secret", views.signing_secret_show, name="signing-secret"),
    path("keys/signing-secret/rotate", views.signing_secret_rotation, name="signing-secret-rotate"),
    path("members/", views.members, name="members"),
    path("members/invite", views.member_invite, name="member-invite"),
    path("members/<int:membership_id>/role", views.member_role, name="member-role"),
    path("members/<int:membership_id>/remove", views.member_remove, name="member-remove"),
    path("members/invitations/<int:invitation_id>/withdraw", views.invitation_withdraw, name="invitation-withdraw"),
    path("audit/", views.audit, name="audit"),
    path("settings/", views.organization_settings, name="settings"),
    path("settings/delete", views.organization_remove, name="organization-delete"),
    path("activity/", notification_views.activity, name="activity"),
    path("activity/<uuid:message_id>", notification_views.activity_message, name="activity-message"),
    path("subscribers/", notification_views.subscribers, name="subscribers"),
    path("subscribers/<int:subscriber_pk>", notification_views.subscriber, name="subscriber"),
    path("subscribers/<int:subscriber_pk>/erase", notification_views.subscriber_erase, name="subscriber-erase"),
    path("quickstart/", notification_views.quickstart, name="quickstart"),
    path("quickstart/preview", notification_views.quickstart_preview, name="quickstart-preview"),
    path("quickstart/send", notification_views.quickstart_send, name="quickstart-send"),
    path("usage/", usage_views.usage, name="usage"),
    path("usage.csv", usage_views.usage_download, name="usage-csv"),
    path("billing/", billing_views.billing, name="billing"),
    path("billing/invoices", billing_views.billing_invoices, name="billing-invoices"),
    path("billing/upgrade", billing_views.billing_upgrade, name="billing-upgrade"),
    path("billing/manage", billing_views.billing_manage, name="billing-manage"),
]

urlpatterns = [
    path("", views.front_door, name="front"),
    path("new", views.organization_new, name="organization-new"),
    path("invite/<str:token>", views.invitation, name="invitation"),
    path("o/<slug:slug>/", include(organization_patterns)),
]

if not settings.PRODUCTION:
    # Development and tests serve the portal's static files from the apps' folders; production serves them from
    # STATIC_ROOT in front of Django.
    urlpatterns.append(re_path(r"^static/(?P<path>.+)$", static_serve, {"insecure": True}))
