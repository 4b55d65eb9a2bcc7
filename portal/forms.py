"""The portal's forms: they validate what a person typed; the services decide."""

from __future__ import annotations

from typing import Any

from django import forms

from tenants.models import Membership

GRACE_CHOICES = [
    (0, "None: the old key stops now"),
    (3600, "1 hour"),
    (86400, "24 hours"),
    (7 * 86400, "7 days"),
    (30 * 86400, "30 days"),
]


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=200, label="Organisation name")
    slug = forms.SlugField(
        max_length=63,
        required=False,
        label="URL name (optional)",
        help_text="Lowercase letters, digits and hyphens; made from the name when empty.",
    )


class OrganizationSettingsForm(forms.Form):
    name = forms.CharField(max_length=200, label="Organisation name")


class KeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, label="Name", help_text="What the key is for.")
    kind = forms.ChoiceField(
        choices=[("secret", "Secret key (your servers)"), ("publishable", "Publishable key (the widget)")],
        label="Kind",
    )
    allowed_origins = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Allowed origins (publishable keys)",
        help_text="One per line, such as https://app.example.com",
    )

    def clean_allowed_origins(self) -> list[str]:
        return origins_from_text(self.cleaned_data.get("allowed_origins") or "")


class KeyRollForm(forms.Form):
    grace = forms.TypedChoiceField(
        choices=GRACE_CHOICES, coerce=int, initial=86400, label="The old key keeps working for"
    )


class KeyOriginsForm(forms.Form):
    allowed_origins = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="Allowed origins",
        help_text="One per line, such as https://app.example.com. Empty: no web page may use this key.",
    )

    def clean_allowed_origins(self) -> list[str]:
        return origins_from_text(self.cleaned_data.get("allowed_origins") or "")


class SigningSecretRotateForm(forms.Form):
    overlap = forms.TypedChoiceField(
        choices=GRACE_CHOICES, coerce=int, initial=86400, label="The current secret keeps working for"
    )


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail address")
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(Membership.Role.choices)
        self.fields["role"].choices = [(r, labels[r]) for r in roles]  # type: ignore[attr-defined]
        self.fields["role"].initial = "developer" if "developer" in roles else roles[0]


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(Membership.Role.choices)
        self.fields["role"].choices = [(r, labels[r]) for r in roles]  # type: ignore[attr-defined]


def origins_from_text(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]
