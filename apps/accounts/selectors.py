"""Reads of accounts and tokens."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Q, QuerySet

from apps.accounts.models import InstallationSettings, PersonalAccessToken, User


def token_list(*, user: User) -> QuerySet[PersonalAccessToken]:
    """The user's own tokens (active and past), with their team scope prefetched."""
    return PersonalAccessToken.objects.filter(user=user).prefetch_related("teams")


USER_STATUSES = ("all", "active", "disabled")


def guardian_anonymous_name() -> str:
    """The username (here: email) of django-guardian's internal anonymous user row."""
    return str(getattr(settings, "ANONYMOUS_USER_NAME", "AnonymousUser"))


def platform_user_list(*, search: str = "", status: str = "all") -> QuerySet[User]:
    """Every account of the installation (for platform admins), with ``teams_count``.

    ``search`` matches email or name partially; ``status`` is one of ``USER_STATUSES``.
    """
    if status not in USER_STATUSES:
        raise ValueError(f"status must be one of {USER_STATUSES}, got {status!r}")
    # django-guardian keeps an internal "AnonymousUser" row; it is no one's account.
    users = User.objects.exclude(email=guardian_anonymous_name()).annotate(
        teams_count=Count("memberships", distinct=True)
    )
    search = search.strip()
    if search:
        users = users.filter(Q(email__icontains=search) | Q(full_name__icontains=search))
    if status != "all":
        users = users.filter(is_active=status == "active")
    return users.order_by("email", "id")


def user_team_ids(*, user: User) -> list[int]:
    """Ids of the teams the user is a member of (for access-change notifications)."""
    return list(user.memberships.order_by("team_id").values_list("team_id", flat=True))


def user_exists(*, email: str) -> bool:
    """Whether an account (active or not) has this address, compared without case."""
    return User.objects.filter(email__iexact=email.strip()).exists()


def installation_settings_get() -> InstallationSettings:
    """The installation's settings row, created with the configured defaults on first read.

    From its creation on, the row is the one store of these facts: changing the environment
    later changes nothing (platform admins change them through ``installation_settings_update``).
    """
    row, _ = InstallationSettings.objects.get_or_create(
        pk=InstallationSettings.SINGLETON_PK,
        defaults={"open_signup": bool(getattr(settings, "OPEN_SIGNUP_DEFAULT", False))},
    )
    return row


def open_signup_allowed() -> bool:
    """Whether anyone may create an account without an invitation."""
    return installation_settings_get().open_signup
