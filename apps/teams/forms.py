"""Forms of the team pages. They shape input for the services, which re-check everything."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.text import slugify

from apps.audit.models import MAX_RETENTION_DAYS
from apps.rbac.permissions import OVERRIDE_CHOICES, ROLE_CHOICES
from apps.teams.models import SLUG_PATTERN

SLUG_HELP = "Lower-case letters, digits and hyphens; used in addresses. Leave empty to derive it."


def derive_slug(name: str) -> str:
    """A slug suggestion from a name: what a user would most likely type."""
    return slugify(name)[:50].strip("-")


class _NamedSlugForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100)
    slug = forms.RegexField(
        label="Short name (slug)",
        regex=SLUG_PATTERN,
        max_length=50,
        required=False,
        help_text=SLUG_HELP,
        error_messages={
            "invalid": "Use lower-case letters, digits and hyphens, not starting or ending "
            "with a hyphen."
        },
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("slug") and cleaned.get("name") and "slug" not in self.errors:
            slug = derive_slug(cleaned["name"])
            if not slug:
                self.add_error("slug", "Choose a short name: the name has no usable letters.")
            cleaned["slug"] = slug
        return cleaned


class TeamForm(_NamedSlugForm):
    """Create or rename a team."""


class ApplicationForm(_NamedSlugForm):
    """Create or edit an application."""

    description = forms.CharField(
        label="Description",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What this application does, e.g. “Line 3 vibration monitoring”.",
    )


class InviteForm(forms.Form):
    """Invite someone by email at a role."""

    email = forms.EmailField(label="Email address", max_length=254)
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, initial="member")


class MemberRoleForm(forms.Form):
    """A member's team role, optionally refined by a custom role."""

    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES)
    custom_role = forms.TypedChoiceField(
        label="Custom role",
        required=False,
        coerce=int,
        empty_value=None,
        help_text="A custom role replaces the role's permissions with its own set.",
    )

    def __init__(self, *args: Any, custom_roles: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["custom_role"]
        field.choices = [("", "None (use the role)")] + [  # type: ignore[attr-defined]  # ChoiceField.choices
            (role.pk, role.name) for role in custom_roles
        ]


CUSTOM_ROLE_CHOICE = "custom:"


class MemberAssignmentForm(forms.Form):
    """The members page's inline role picker: one select of the roles and the custom roles."""

    assignment = forms.ChoiceField(label="Role")

    def __init__(self, *args: Any, custom_roles: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices: list[Any] = list(ROLE_CHOICES)
        if custom_roles:
            custom = [(f"{CUSTOM_ROLE_CHOICE}{role.pk}", role.name) for role in custom_roles]
            choices.append(("Custom roles", custom))
        self.fields["assignment"].choices = choices  # type: ignore[attr-defined]  # ChoiceField.choices

    def custom_role_id(self) -> str | None:
        """The chosen custom role's id, or None when a plain role was chosen."""
        value: str = self.cleaned_data["assignment"]
        return (
            value.removeprefix(CUSTOM_ROLE_CHOICE) if value.startswith(CUSTOM_ROLE_CHOICE) else None
        )


class OverrideForm(forms.Form):
    """A member's role inside one application."""

    membership = forms.TypedChoiceField(label="Member", coerce=int)
    role = forms.ChoiceField(label="Role in this application", choices=OVERRIDE_CHOICES)

    def __init__(self, *args: Any, memberships: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["membership"].choices = [  # type: ignore[attr-defined]  # ChoiceField.choices
            (membership.pk, membership.user.email) for membership in memberships
        ]


class CustomRoleForm(forms.Form):
    """A named set of permission keys."""

    name = forms.CharField(label="Name", max_length=100)
    description = forms.CharField(label="Description", max_length=300, required=False)
    permissions = forms.MultipleChoiceField(
        label="Permissions", widget=forms.CheckboxSelectMultiple
    )

    def __init__(
        self, *args: Any, permission_choices: list[tuple[str, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["permissions"].choices = permission_choices  # type: ignore[attr-defined]  # ChoiceField.choices


class RetentionForm(forms.Form):
    """How long the team's audit events are kept."""

    audit_retention_days = forms.IntegerField(
        label="Keep audit events for (days)",
        min_value=1,
        max_value=MAX_RETENTION_DAYS,
        help_text=f"1 to {MAX_RETENTION_DAYS} days. Older events are purged nightly.",
    )


class TeamDeleteForm(forms.Form):
    """Deleting a team asks for its slug, so it cannot happen by a stray click."""

    confirm = forms.CharField(label="Type the team's short name to confirm", max_length=50)

    def __init__(self, *args: Any, slug: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected = slug

    def clean_confirm(self) -> str:
        value: str = self.cleaned_data["confirm"].strip()
        if value != self.expected:
            raise forms.ValidationError(f"Type “{self.expected}” exactly to delete the team.")
        return value
