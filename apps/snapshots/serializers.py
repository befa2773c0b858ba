"""API shapes of snapshots and team signing keys. Credential values never appear in any of
them: a snapshot shows the field names of its credentials only."""

from __future__ import annotations

import base64
from typing import Any

from rest_framework import serializers

from apps.snapshots.models import ModelArtifact, Snapshot, TeamKey
from apps.snapshots.selectors import node_types
from apps.snapshots.services import snapshot_credential_fields


def author_label(snapshot: Snapshot) -> str:
    if snapshot.author is not None:
        return str(snapshot.author.email)
    return snapshot.author_label


class SnapshotSerializer(serializers.ModelSerializer[Snapshot]):
    application = serializers.CharField(source="application.slug", read_only=True)
    author = serializers.SerializerMethodField()
    node_count = serializers.SerializerMethodField()

    class Meta:
        model = Snapshot
        fields: tuple[str, ...] = (
            "id",
            "name",
            "description",
            "application",
            "author",
            "parent",
            "digest",
            "node_count",
            "created_at",
        )
        read_only_fields = fields

    def get_author(self, snapshot: Snapshot) -> str:
        return author_label(snapshot)

    def get_node_count(self, snapshot: Snapshot) -> int:
        return len(snapshot.flows)


class SnapshotDetailSerializer(SnapshotSerializer):
    credential_fields = serializers.SerializerMethodField(
        help_text="Credential field names per node id (the values are sealed, never shown)."
    )
    node_types = serializers.SerializerMethodField()

    class Meta(SnapshotSerializer.Meta):
        fields = (
            *SnapshotSerializer.Meta.fields,
            "env",
            "runner_settings",
            "model_refs",
            "credential_fields",
            "node_types",
        )
        read_only_fields = fields

    def get_credential_fields(self, snapshot: Snapshot) -> dict[str, list[str]]:
        return snapshot_credential_fields(snapshot)

    def get_node_types(self, snapshot: Snapshot) -> dict[str, int]:
        return dict(node_types(snapshot.flows))


class SnapshotWriteSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )
    flows = serializers.JSONField(
        help_text='A Node-RED flows.json array, or {"flows": [...], "credentials": {...}}.'
    )
    env = serializers.JSONField(required=False, allow_null=True, default=None)
    runner_settings = serializers.JSONField(required=False, allow_null=True, default=None)
    model_refs = serializers.JSONField(required=False, allow_null=True, default=None)
    parent_id = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)


class TeamKeySerializer(serializers.ModelSerializer[TeamKey]):
    public_key = serializers.SerializerMethodField(help_text="Raw Ed25519 public key, base64.")
    active = serializers.SerializerMethodField()

    class Meta:
        model = TeamKey
        fields = ("key_id", "public_key", "active", "created_at", "retired_at")
        read_only_fields = fields

    def get_public_key(self, key: TeamKey) -> str:
        return base64.b64encode(bytes(key.signing_public)).decode()

    def get_active(self, key: TeamKey) -> bool:
        return key.retired_at is None


class ModelArtifactSerializer(serializers.ModelSerializer[ModelArtifact]):
    created_by = serializers.SerializerMethodField()
    snapshot_count = serializers.SerializerMethodField(
        help_text="How many snapshots ship this model (it cannot be deleted while any does)."
    )

    class Meta:
        model = ModelArtifact
        fields: tuple[str, ...] = (
            "id",
            "name",
            "sha256",
            "size",
            "content_type",
            "created_by",
            "created_at",
            "snapshot_count",
        )
        read_only_fields = fields

    def get_created_by(self, artifact: ModelArtifact) -> str:
        return str(artifact.created_by.email) if artifact.created_by is not None else ""

    def get_snapshot_count(self, artifact: ModelArtifact) -> int:
        count = getattr(artifact, "snapshot_count", None)
        return int(count) if count is not None else artifact.snapshot_links.count()


class ModelUploadSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    file = serializers.FileField(allow_empty_file=True)
