"""Custom role ids to objects, within the accessed team only."""

from __future__ import annotations

from apps.core.errors import NotFound
from apps.rbac.models import CustomRole
from apps.teams.access import TeamAccess


def access_custom_role(access: TeamAccess, role_id: object, permission: str) -> CustomRole:
    """A custom role of the accessed team by id; 404 alike for missing and foreign."""
    access.require(permission)
    try:
        pk = int(str(role_id))
    except ValueError:
        raise NotFound("Custom role not found.") from None
    role = CustomRole.objects.select_related("team").filter(team=access.team, pk=pk).first()
    if role is None:
        raise NotFound("Custom role not found.")
    return role
