"""Helpers shared by the team services."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from guardian.models import UserObjectPermission

from apps.accounts.actors import Actor, actor_token, actor_user
from apps.core.errors import NotFound, PermissionDenied, ValidationError
from apps.rbac.permissions import Role
from apps.teams.models import Application, Membership, Team, slug_validator


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


def actor_membership(actor: Actor, team: Team) -> Membership | None:
    return Membership.objects.filter(team=team, user=actor_user(actor)).first()


def require_owner(actor: Actor, team: Team, what: str) -> None:
    """Owner-level acts need a real owner: custom roles and read-only tokens never qualify."""
    membership = actor_membership(actor, team)
    token = actor_token(actor)
    if (
        membership is None
        or membership.role != Role.OWNER
        or membership.custom_role_id is not None
        or (token is not None and token.read_only)
    ):
        raise PermissionDenied(f"Only a team owner can {what}.")


def clear_application_grants(user_id: int, application_ids: list[int]) -> None:
    """Remove guardian object permissions of one user (or all users if user_id is 0)."""
    from django.contrib.contenttypes.models import ContentType

    rows = UserObjectPermission.objects.filter(
        content_type=ContentType.objects.get_for_model(Application),
        object_pk__in=[str(pk) for pk in application_ids],
    )
    if user_id:
        rows = rows.filter(user_id=user_id)
    rows.delete()


def membership_snapshot(membership: Membership) -> dict[str, Any]:
    return {
        "user": membership.user.email,
        "role": membership.role,
        "custom_role": membership.custom_role.name if membership.custom_role else None,
    }
