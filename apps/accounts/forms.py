"""Forms of the account pages: login by email, and personal access tokens."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import authenticate
from django.http import HttpRequest

from apps.accounts.models import User
from apps.accounts.throttle import (
    LOGIN,
    Throttled,
    throttle_check,
    throttle_clear_account,
    throttle_count,
)


class LoginForm(forms.Form):
    """Email + password. One message for every failure so accounts cannot be probed."""

    email = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    error_messages = {
        "invalid_login": "That email and password do not match an active account.",
    }

    def __init__(self, request: HttpRequest | None = None, *args: Any, **kwargs: Any) -> None:
        self.request = request
        self.user_cache: User | None = None
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        email = cleaned.get("email")
        password = cleaned.get("password")
        if email and password:
            account = email.strip().lower()
            try:
                # Checked before the password: once throttled, even the right one is refused.
                throttle_check(
                    LOGIN,
                    account=account,
                    target=lambda: User.objects.filter(email__iexact=account).first(),
                )
            except Throttled as exc:
                raise forms.ValidationError(exc.message, code="throttled") from None
            user = authenticate(self.request, email=account, password=password)
            # ModelBackend already refuses inactive users; the check is explicit for other backends.
            if user is None or not user.is_active:
                throttle_count(LOGIN, account=account)
                raise forms.ValidationError(
                    self.error_messages["invalid_login"], code="invalid_login"
                )
            throttle_clear_account(LOGIN, account=account)
            self.user_cache = user
        return cleaned

    def get_user(self) -> User | None:
        """The authenticated user (LoginView's contract)."""
        return self.user_cache


EXPIRY_CHOICES = [
    (7, "7 days"),
    (30, "30 days"),
    (90, "90 days"),
    (180, "180 days"),
    (366, "1 year"),
]


class TokenCreateForm(forms.Form):
    """A personal access token's name and scope. The service re-checks everything."""

    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text="So you can recognise it later, e.g. “CI pipeline” or “Grafana”.",
    )
    read_only = forms.BooleanField(
        label="Read-only: this token can look but never change anything", required=False
    )
    all_teams = forms.BooleanField(
        label="All my teams (including teams I join later)", required=False, initial=True
    )
    teams = forms.MultipleChoiceField(
        label="Or only these teams",
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    expires_in_days = forms.TypedChoiceField(
        label="Expires after", choices=EXPIRY_CHOICES, coerce=int, initial=90
    )

    def __init__(self, *args: Any, team_choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["teams"].choices = team_choices  # type: ignore[attr-defined]  # ChoiceField

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("all_teams") and not cleaned.get("teams"):
            self.add_error("teams", "Choose at least one team, or tick “All my teams”.")
        if cleaned.get("all_teams") and cleaned.get("teams"):
            self.add_error("teams", "Either all teams or chosen teams, not both.")
        return cleaned

    def team_slugs(self) -> list[str] | None:
        """The scope for ``token_create``: ``None`` means all the user's teams."""
        if self.cleaned_data.get("all_teams"):
            return None
        return list(self.cleaned_data.get("teams") or [])


class InvitedSignupForm(forms.Form):
    """An account for the address an invitation went to (the address itself is fixed)."""

    full_name = forms.CharField(
        label="Your name",
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "name", "autofocus": True}),
    )
    password = forms.CharField(
        label="Choose a password",
        strip=False,
        help_text="At least 8 characters, not only digits, not a common password.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password_again = forms.CharField(
        label="The same password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("password") and cleaned.get("password") != cleaned.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return cleaned


class OpenSignupForm(InvitedSignupForm):
    """An account for anyone, when the platform admins allow open sign-up."""

    email = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    field_order = ["email", "full_name", "password", "password_again"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["full_name"].widget.attrs.pop("autofocus", None)


class OpenSignupSwitchForm(forms.Form):
    """The platform admins' choice: open sign-up or invitations only."""

    open_signup = forms.TypedChoiceField(
        label="Who can create an account",
        choices=[
            ("0", "Only people invited to a team (and accounts you create)"),
            ("1", "Anyone who opens the sign-up page"),
        ],
        coerce=lambda value: value == "1",
        widget=forms.RadioSelect,
    )


class PlatformUserCreateForm(forms.Form):
    """A platform admin creates an account and hands over the first password in person."""

    email = forms.EmailField(label="Email", max_length=254)
    full_name = forms.CharField(label="Name", max_length=150, required=False)
    password = forms.CharField(
        label="First password",
        strip=False,
        help_text="Tell it to the person; they can change it under Account → Change password.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
