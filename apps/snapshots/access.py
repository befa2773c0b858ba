"""Snapshot ids become snapshots only here, with the permission check (404 alike for missing,
foreign and hidden applications)."""

from __future__ import annotations

from apps.core.errors import NotFound
from apps.core.ids import parse_id
from apps.rbac.permissions import NO_ACCESS
from apps.snapshots.models import Snapshot
from apps.teams.access import TeamAccess


def access_snapshot(access: TeamAccess, snapshot_id: object, permission: str) -> Snapshot:
    """A snapshot of the accessed team by id, if ``permission`` holds in its application."""
    pk = parse_id(snapshot_id)
    snapshot = (
        Snapshot.objects.select_related("application", "author", "credentials_key", "team")
        .filter(team=access.team, pk=pk)
        .first()
        if pk is not None
        else None
    )
    if snapshot is None or access.application_role(snapshot.application) == NO_ACCESS:
        raise NotFound("Snapshot not found.")
    access.require(permission, snapshot.application)
    return snapshot
