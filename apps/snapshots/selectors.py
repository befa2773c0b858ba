"""Reads of snapshots and team keys, always filtered by team."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.db.models import Count, F, QuerySet

from apps.snapshots.models import ModelArtifact, Snapshot, TeamKey
from apps.teams.models import Application, Team


def snapshot_list(*, team: Team, application: Application) -> QuerySet[Snapshot]:
    """An application's snapshots, newest first (flows not loaded: lists stay light)."""
    return (
        Snapshot.objects.filter(team=team, application=application)
        .select_related("author", "application")
        .defer("credentials_sealed")
    )


def team_key_list(*, team: Team) -> QuerySet[TeamKey]:
    """The team's keys, active first then newest (public halves are what callers show)."""
    return (
        TeamKey.objects.filter(team=team)
        .order_by(F("retired_at").desc(nulls_first=True), "-id")
        .defer("signing_private_sealed", "data_key_sealed")
    )


def model_list(*, team: Team) -> QuerySet[ModelArtifact]:
    """The team's models, newest first, with ``snapshot_count`` (snapshots that ship each)."""
    return (
        ModelArtifact.objects.filter(team=team)
        .select_related("created_by")
        .annotate(snapshot_count=Count("snapshot_links"))
        .order_by("-created_at", "-id")
    )


def models_by_hash(*, team: Team, hashes: Iterable[str]) -> dict[str, ModelArtifact]:
    """The team's models among ``hashes``, by hash."""
    rows = ModelArtifact.objects.filter(team=team, sha256__in=set(hashes))
    return {artifact.sha256: artifact for artifact in rows}


def snapshot_model_list(*, snapshot: Snapshot) -> list[ModelArtifact]:
    """The models a snapshot ships, by hash."""
    return [
        link.artifact
        for link in snapshot.model_links.select_related("artifact").order_by("artifact__sha256")
    ]


def node_types(flows: list[Any]) -> list[tuple[str, int]]:
    """Nodes per type (tabs, subflows and config nodes included), most common first."""
    counts = Counter(str(node.get("type", "?")) for node in flows if isinstance(node, dict))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
