"""Snapshots and the team keys that protect and sign them.

A ``Snapshot`` is immutable once stored (``save`` refuses an update): an application's flows,
its credentials sealed with the team's data key (AEAD: never readable in the database, in
exports or in API answers), env vars, runner settings and the models it references by content
hash. ``TeamKey`` holds a team's Ed25519 signing key and its AES-256 data key, both encrypted
with the platform's key (``apps.snapshots.keys``); a rotation adds a new active row and retires
the old one, which stays to verify what it signed. ``TeamGeneration`` is the team's counter of
issued targets (docs/device-protocol.md): it only grows.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from apps.core.models import TeamOwned


class ImmutableError(RuntimeError):
    """A stored snapshot was about to change."""


class Snapshot(TeamOwned):
    application = models.ForeignKey(
        "teams.Application", on_delete=models.CASCADE, related_name="snapshots"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=2000)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A device that contributed it (developer mode), shown instead of a user.
    author_label = models.CharField(max_length=200, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    flows = models.JSONField()  # the flows without credentials, as Node-RED exports them
    # {node id: {field: value}} encrypted with the team data key (apps.snapshots.keys).
    credentials_sealed = models.BinaryField(default=bytes, editable=False)
    credentials_key = models.ForeignKey(
        "snapshots.TeamKey", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    env = models.JSONField(default=dict, blank=True)  # {NAME: value}
    runner_settings = models.JSONField(default=dict, blank=True)  # runner options, health check
    model_refs = models.JSONField(default=list, blank=True)  # [{"name", "sha256", "size"}]
    # SHA-256 of the canonical flows + env + settings + models + credential fields: equal
    # snapshots have equal digests (credential values are not part of it).
    digest = models.CharField(max_length=64)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["team", "application", "-created_at"])]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ImmutableError("snapshots are immutable: create a new one")
        super().save(*args, **kwargs)


class TeamKey(TeamOwned):
    """One generation of a team's keys. Exactly one active row per team."""

    key_id = models.CharField(max_length=20, unique=True)  # edge_runner.protocol.manifest.key_id
    signing_public = models.BinaryField()  # raw Ed25519 public key (32 bytes)
    signing_private_sealed = models.BinaryField()  # encrypted with the platform key
    data_key_sealed = models.BinaryField()  # AES-256 key for snapshot credentials, encrypted
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("team", "-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["team"],
                condition=models.Q(retired_at__isnull=True),
                name="one_active_team_key",
            )
        ]

    def __str__(self) -> str:
        return self.key_id


class TeamGeneration(models.Model):
    """The last generation issued in a team (incremented under a row lock)."""

    team = models.OneToOneField("teams.Team", on_delete=models.CASCADE, primary_key=True)
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.team_id}: {self.value}"


class ModelArtifact(TeamOwned):
    """An ONNX model a team uploaded, by content hash (its bytes live on disk, shared by
    every team that uploaded the same bytes: ``apps.snapshots.artifacts``)."""

    name = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=100, default="application/onnx")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["team", "sha256"], name="one_artifact_per_team_hash")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"


class SnapshotModel(models.Model):
    """A model a snapshot ships (written with the snapshot, never changed): a referenced
    artifact cannot be deleted while a snapshot lists it."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="model_links")
    artifact = models.ForeignKey(
        ModelArtifact, on_delete=models.PROTECT, related_name="snapshot_links"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "artifact"], name="one_link_per_model")
        ]

    def __str__(self) -> str:
        return f"{self.snapshot_id} -> {self.artifact_id}"
