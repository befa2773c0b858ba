"""Snapshot ids become snapshots only here, with the permission check (404 alike for missing,
foreign and hidden applications)."""

from __future__ import annotations

from apps.core.errors import NotFound
from apps.core.ids import parse_id
from apps.rbac.permissions import NO_ACCESS
from apps.snapshots.models import ModelArtifact, Snapshot
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


def access_model(access: TeamAccess, model_id: object, permission: str) -> ModelArtifact:
    """A model of the accessed team by id, if ``permission`` holds (404 alike for missing and
    another team's, even when both teams uploaded the same bytes)."""
    pk = parse_id(model_id)
    artifact = (
        ModelArtifact.objects.select_related("created_by", "team")
        .filter(team=access.team, pk=pk)
        .first()
        if pk is not None
        else None
    )
    if artifact is None:
        raise NotFound("Model not found.")
    access.require(permission)
    return artifact
