"""Helpers shared by the team services."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from apps.core.errors import NotFound, ValidationError
from apps.teams.models import Membership, Team, slug_validator


def clean_name(value: str | None, field: str = "name", max_length: int = 100) -> str:
    cleaned = (value or "").strip()
    if not cleaned or len(cleaned) > max_length:
        raise ValidationError(
            f"The {field} must be 1 to {max_length} characters.",
            fields={field: f"Enter 1 to {max_length} characters."},
        )
    return cleaned


def clean_slug(value: str | None) -> str:
    cleaned = (value or "").strip()
    try:
        slug_validator(cleaned)
    except DjangoValidationError as exc:
        raise ValidationError(f"Invalid slug {cleaned!r}.", fields={"slug": exc.messages}) from None
    return cleaned


def duplicate_slug(slug: str, where: str) -> ValidationError:
    return ValidationError(
        f"The slug {slug!r} is already taken{where}.",
        fields={"slug": "This slug is already taken."},
        code="duplicate",
    )


def save_unique(instance: Any, slug: str, where: str) -> None:
    """Save, turning a uniqueness race into the same clear error as the pre-check."""
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        raise duplicate_slug(slug, where) from None


def lock_team(team: Team) -> Team:
    """Serialise membership changes of one team (the last-owner rule depends on it)."""
    try:
        return Team.objects.select_for_update().get(pk=team.pk)
    except Team.DoesNotExist:
        raise NotFound("Team not found.") from None


def membership_snapshot(membership: Membership) -> dict[str, Any]:
    return {
        "user": membership.user.email,
        "role": membership.role,
        "custom_role": membership.custom_role.name if membership.custom_role else None,
    }
