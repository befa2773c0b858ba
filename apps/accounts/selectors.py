"""Reads of accounts and tokens."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import PersonalAccessToken, User


def token_list(*, user: User) -> QuerySet[PersonalAccessToken]:
    """The user's own tokens (active and past), with their team scope prefetched."""
    return PersonalAccessToken.objects.filter(user=user).prefetch_related("teams")
