"""Custom role ids to objects, within the accessed team only."""

from __future__ import annotations

from apps.core.errors import NotFound
from apps.core.ids import parse_id
from apps.rbac.models import CustomRole
from apps.teams.access import TeamAccess


def access_custom_role(access: TeamAccess, role_id: object, permission: str) -> CustomRole:
    """A custom role of the accessed team by id; 404 alike for missing and foreign."""
    access.require(permission)
    pk = parse_id(role_id)
    if pk is None:
        raise NotFound("Custom role not found.")
    role = CustomRole.objects.select_related("team").filter(team=access.team, pk=pk).first()
    if role is None:
        raise NotFound("Custom role not found.")
    return role
