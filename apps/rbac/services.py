"""Custom role writes: a team owner defines named sets of permission keys and assigns them."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.core.errors import Conflict, ValidationError
from apps.core.realtime import notify_team_access_changed
from apps.rbac.models import CustomRole
from apps.rbac.permissions import validate_custom_role_keys
from apps.teams.models import Team


def _clean(
    name: str | None, permissions: Any, description: str | None
) -> tuple[str, list[str], str]:
    errors: dict[str, list[str]] = {}
    cleaned_name = (name or "").strip()
    if not cleaned_name or len(cleaned_name) > 100:
        errors["name"] = ["Enter 1 to 100 characters."]
    if not isinstance(permissions, (list, tuple, set, frozenset)) or not all(
        isinstance(key, str) for key in permissions
    ):
        errors["permissions"] = ["Give a list of permission keys."]
        keys: list[str] = []
    else:
        keys = sorted(set(permissions))
        problems = validate_custom_role_keys(keys)
        if problems:
            errors["permissions"] = problems
        elif not keys:
            errors["permissions"] = ["Choose at least one permission."]
    cleaned_description = (description or "").strip()
    if len(cleaned_description) > 300:
        errors["description"] = ["At most 300 characters."]
    if errors:
        raise ValidationError("The custom role is not valid.", fields=errors)
    return cleaned_name, keys, cleaned_description


def _snapshot(role: CustomRole) -> dict[str, Any]:
    return {
        "name": role.name,
        "permissions": list(role.permissions),
        "description": role.description,
    }


def _save(role: CustomRole) -> None:
    try:
        with transaction.atomic():
            role.save()
    except IntegrityError:
        raise ValidationError(
            f"A custom role named {role.name!r} already exists.",
            fields={"name": "This name is already taken."},
            code="duplicate",
        ) from None


def custom_role_create(
    *,
    principal: Principal,
    team: Team,
    name: str,
    permissions: list[str],
    description: str = "",
) -> CustomRole:
    """Define a custom role in a team."""
    name, keys, description = _clean(name, permissions, description)
    with transaction.atomic():
        role = CustomRole(team=team, name=name, permissions=keys, description=description)
        _save(role)
        audit_record(
            event="team.custom_role.created",
            principal=principal,
            team=team,
            target=role,
            after=_snapshot(role),
        )
    return role


def custom_role_update(
    *,
    principal: Principal,
    role: CustomRole,
    name: str | None = None,
    permissions: list[str] | None = None,
    description: str | None = None,
) -> CustomRole:
    """Change a custom role; its holders get the new keys at their next request."""
    before = _snapshot(role)
    name, keys, description = _clean(
        role.name if name is None else name,
        role.permissions if permissions is None else permissions,
        role.description if description is None else description,
    )
    with transaction.atomic():
        role.name, role.permissions, role.description = name, keys, description
        _save(role)
        after = _snapshot(role)
        if after != before:
            # Its holders' sockets re-check first, so they never see an event their new keys hide.
            notify_team_access_changed(role.team_id)
            audit_record(
                event="team.custom_role.updated",
                principal=principal,
                team=role.team,
                target=role,
                before=before,
                after=after,
            )
    return role


def custom_role_delete(*, principal: Principal, role: CustomRole) -> None:
    """Delete a custom role nobody holds."""
    with transaction.atomic():
        holders = role.memberships.count()
        if holders:
            raise Conflict(
                f"{holders} member(s) still hold the role {role.name!r}; "
                "give them another role first.",
                code="role_in_use",
            )
        audit_record(
            event="team.custom_role.deleted",
            principal=principal,
            team=role.team,
            target=role,
            before=_snapshot(role),
        )
        role.delete()
