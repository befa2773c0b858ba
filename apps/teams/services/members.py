"""Membership services: roles, custom roles, application overrides, removal and leaving.

The last owner of a team can never leave, be removed or be demoted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.core.errors import Conflict, NotFound, ValidationError
from apps.core.realtime import notify_team_access_changed
from apps.rbac.permissions import FULL_OWNER_LOOKUP, OVERRIDE_ROLES, ROLES, Role, is_full_owner
from apps.teams.access import require_team_permission
from apps.teams.models import Application, ApplicationRoleOverride, Membership, Team
from apps.teams.services._common import lock_team, membership_snapshot

if TYPE_CHECKING:
    from apps.rbac.models import CustomRole

LAST_OWNER = "A team must keep at least one owner: make someone else owner first."


def _is_last_owner(team: Team, membership: Membership) -> bool:
    if not is_full_owner(membership):
        return False
    others = Membership.objects.filter(team=team, **FULL_OWNER_LOOKUP).exclude(pk=membership.pk)
    return not others.exists()


_UNSET: object = object()


def member_role_change(
    *,
    principal: Principal,
    membership: Membership,
    role: str | None = None,
    custom_role: CustomRole | object | None = _UNSET,
) -> Membership:
    """Set a member's team role and/or custom role (``custom_role=None`` clears it)."""
    team = membership.team
    if role is not None and role not in ROLES:
        raise ValidationError(
            f"Unknown role {role!r}.", fields={"role": f"Choose one of {', '.join(ROLES)}."}
        )
    with transaction.atomic():
        lock_team(team)
        require_team_permission(principal, team, "member:role")
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
        was_last_owner = _is_last_owner(team, membership)
        membership.role = new_role
        membership.custom_role = new_custom  # type: ignore[assignment]  # narrowed above
        if was_last_owner and not is_full_owner(membership):
            raise Conflict(LAST_OWNER, code="last_owner")
        membership.save(update_fields=["role", "custom_role", "updated_at"])
        if is_full_owner(membership):
            # Overrides never apply to full owners; drop them rather than keep dead rows.
            membership.overrides.all().delete()
        after = membership_snapshot(membership)
        if after != before:
            notify_team_access_changed(team.pk)
            audit_record(
                event="team.member.role_changed",
                principal=principal,
                team=team,
                target=membership,
                before=before,
                after=after,
            )
    return membership


def member_remove(*, principal: Principal, membership: Membership) -> None:
    """Remove someone from the team (owners only; never the last owner)."""
    team = membership.team
    with transaction.atomic():
        lock_team(team)
        require_team_permission(principal, team, "member:remove")
        membership = Membership.objects.select_related("user", "custom_role").get(pk=membership.pk)
        if _is_last_owner(team, membership):
            raise Conflict(LAST_OWNER, code="last_owner")
        before = membership_snapshot(membership)
        notify_team_access_changed(team.pk)
        audit_record(
            event="team.member.removed",
            principal=principal,
            team=team,
            target=membership,
            before=before,
        )
        membership.delete()


def member_leave(*, principal: Principal, team: Team) -> None:
    """Leave a team oneself (never as the last owner)."""
    principal.require_writable("leave a team")
    with transaction.atomic():
        lock_team(team)
        membership = (
            Membership.objects.select_related("user", "custom_role")
            .filter(team=team, user=principal.require_user("leave a team"))
            .first()
        )
        if membership is None:
            raise NotFound("Team not found.")
        if _is_last_owner(team, membership):
            raise Conflict(LAST_OWNER, code="last_owner")
        notify_team_access_changed(team.pk)
        audit_record(
            event="team.member.left",
            principal=principal,
            team=team,
            target=membership,
            before=membership_snapshot(membership),
        )
        membership.delete()


def application_override_set(
    *,
    principal: Principal,
    membership: Membership,
    application: Application,
    role: str,
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
        require_team_permission(principal, team, "member:role")
        if is_full_owner(membership):
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
        notify_team_access_changed(team.pk)
        audit_record(
            event="team.application_role.set",
            principal=principal,
            team=team,
            application=application,
            target=override,
            before=before,
            after={"user": membership.user.email, "role": role},
        )
    return override


def application_override_remove(*, principal: Principal, override: ApplicationRoleOverride) -> None:
    """Drop an override; the member's team role applies in the application again."""
    membership = override.membership
    team = membership.team
    application = override.application
    with transaction.atomic():
        require_team_permission(principal, team, "member:role")
        notify_team_access_changed(team.pk)
        audit_record(
            event="team.application_role.removed",
            principal=principal,
            team=team,
            application=application,
            target=override,
            before={"user": membership.user.email, "role": override.role},
        )
        override.delete()
