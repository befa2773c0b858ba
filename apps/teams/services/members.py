"""Membership services: roles, custom roles, application overrides, removal and leaving.

The last owner of a team can never leave, be removed or be demoted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.http import HttpRequest
from guardian.shortcuts import assign_perm

from apps.accounts.actors import Actor, actor_user
from apps.audit.services import audit_record
from apps.core.errors import Conflict, NotFound, ValidationError
from apps.rbac.permissions import OVERRIDE_ROLES, ROLES, Role
from apps.teams.models import Application, ApplicationRoleOverride, Membership, Team
from apps.teams.selectors import GUARDIAN_PREFIX
from apps.teams.services._common import (
    clear_application_grants,
    lock_team,
    membership_snapshot,
    require_owner,
)

if TYPE_CHECKING:
    from apps.rbac.models import CustomRole

LAST_OWNER = "A team must keep at least one owner: make someone else owner first."


def _other_owners(team: Team, membership: Membership) -> int:
    return (
        Membership.objects.filter(team=team, role=Role.OWNER, custom_role__isnull=True)
        .exclude(pk=membership.pk)
        .count()
    )


def _drop_overrides(membership: Membership) -> None:
    application_ids = list(
        Application.objects.filter(team_id=membership.team_id).values_list("pk", flat=True)
    )
    clear_application_grants(membership.user_id, application_ids)
    membership.overrides.all().delete()


_UNSET: object = object()


def member_role_change(
    *,
    actor: Actor,
    membership: Membership,
    role: str | None = None,
    custom_role: CustomRole | object | None = _UNSET,
    request: HttpRequest | None = None,
) -> Membership:
    """Set a member's team role and/or custom role (``custom_role=None`` clears it)."""
    team = membership.team
    if role is not None and role not in ROLES:
        raise ValidationError(
            f"Unknown role {role!r}.", fields={"role": f"Choose one of {', '.join(ROLES)}."}
        )
    with transaction.atomic():
        lock_team(team)
        require_owner(actor, team, "change roles")
        membership = Membership.objects.select_related("user", "custom_role").get(pk=membership.pk)
        before = membership_snapshot(membership)
        new_role = role if role is not None else membership.role
        new_custom = membership.custom_role if custom_role is _UNSET else custom_role
        if new_custom is not None:
            if getattr(new_custom, "team_id", None) != team.pk:
                raise ValidationError("Unknown custom role.", fields={"custom_role": "Not found."})
            if new_role == Role.OWNER:
                raise ValidationError(
                    "Owners have every permission; a custom role cannot be given to an owner.",
                    fields={"custom_role": "Not allowed for owners."},
                )
        was_full_owner = membership.role == Role.OWNER and membership.custom_role_id is None
        stays_full_owner = new_role == Role.OWNER and new_custom is None
        if was_full_owner and not stays_full_owner and _other_owners(team, membership) == 0:
            raise Conflict(LAST_OWNER, code="last_owner")
        membership.role = new_role
        membership.custom_role = new_custom  # type: ignore[assignment]  # narrowed above
        membership.save(update_fields=["role", "custom_role", "updated_at"])
        if stays_full_owner:
            _drop_overrides(membership)
        after = membership_snapshot(membership)
        if after != before:
            audit_record(
                event="team.member.role_changed",
                actor=actor,
                team=team,
                target=membership,
                before=before,
                after=after,
                request=request,
            )
    return membership


def member_remove(
    *, actor: Actor, membership: Membership, request: HttpRequest | None = None
) -> None:
    """Remove someone from the team (owners only; never the last owner)."""
    team = membership.team
    with transaction.atomic():
        lock_team(team)
        require_owner(actor, team, "remove members")
        membership = Membership.objects.select_related("user", "custom_role").get(pk=membership.pk)
        if membership.role == Role.OWNER and _other_owners(team, membership) == 0:
            raise Conflict(LAST_OWNER, code="last_owner")
        before = membership_snapshot(membership)
        audit_record(
            event="team.member.removed",
            actor=actor,
            team=team,
            target=membership,
            before=before,
            request=request,
        )
        _drop_overrides(membership)
        membership.delete()


def member_leave(*, actor: Actor, team: Team, request: HttpRequest | None = None) -> None:
    """Leave a team oneself (never as the last owner)."""
    with transaction.atomic():
        lock_team(team)
        membership = (
            Membership.objects.select_related("user", "custom_role")
            .filter(team=team, user=actor_user(actor))
            .first()
        )
        if membership is None:
            raise NotFound("Team not found.")
        if membership.role == Role.OWNER and _other_owners(team, membership) == 0:
            raise Conflict(LAST_OWNER, code="last_owner")
        audit_record(
            event="team.member.left",
            actor=actor,
            team=team,
            target=membership,
            before=membership_snapshot(membership),
            request=request,
        )
        _drop_overrides(membership)
        membership.delete()


def application_override_set(
    *,
    actor: Actor,
    membership: Membership,
    application: Application,
    role: str,
    request: HttpRequest | None = None,
) -> ApplicationRoleOverride:
    """Give a member another role (or "none") inside one application of the same team."""
    team = membership.team
    if application.team_id != team.pk:
        raise ValidationError("Unknown application.", fields={"application": "Not found."})
    if role not in OVERRIDE_ROLES:
        raise ValidationError(
            f"Unknown override role {role!r}.",
            fields={"role": f"Choose one of {', '.join(OVERRIDE_ROLES)}."},
        )
    with transaction.atomic():
        lock_team(team)
        require_owner(actor, team, "change application roles")
        if membership.role == Role.OWNER and membership.custom_role_id is None:
            raise ValidationError(
                "Owners have full access to every application; demote them first.",
                fields={"membership": "Owners cannot have application overrides."},
            )
        override = ApplicationRoleOverride.objects.filter(
            membership=membership, application=application
        ).first()
        before = {"role": override.role} if override else None
        if override is None:
            override = ApplicationRoleOverride(membership=membership, application=application)
        override.role = role
        override.save()
        clear_application_grants(membership.user_id, [application.pk])
        assign_perm(f"teams.{GUARDIAN_PREFIX}{role}", membership.user, application)
        audit_record(
            event="team.application_role.set",
            actor=actor,
            team=team,
            application=application,
            target=override,
            before=before,
            after={"user": membership.user.email, "role": role},
            request=request,
        )
    return override


def application_override_remove(
    *, actor: Actor, override: ApplicationRoleOverride, request: HttpRequest | None = None
) -> None:
    """Drop an override; the member's team role applies in the application again."""
    membership = override.membership
    team = membership.team
    application = override.application
    with transaction.atomic():
        require_owner(actor, team, "change application roles")
        audit_record(
            event="team.application_role.removed",
            actor=actor,
            team=team,
            application=application,
            target=override,
            before={"user": membership.user.email, "role": override.role},
            request=request,
        )
        clear_application_grants(membership.user_id, [application.pk])
        override.delete()
