"""REST API of snapshots and team signing keys (thin: services and access do the work)."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api import validated
from apps.core.errors import NotFound, ValidationError
from apps.core.pagination import paginated_response
from apps.snapshots import artifacts, selectors, services
from apps.snapshots.access import access_model, access_snapshot
from apps.snapshots.models import ModelArtifact, Snapshot
from apps.snapshots.serializers import (
    ModelArtifactSerializer,
    ModelUploadSerializer,
    SnapshotDetailSerializer,
    SnapshotSerializer,
    SnapshotWriteSerializer,
    TeamKeySerializer,
)
from apps.teams.access import access_application
from apps.teams.api_base import TEAM_SLUG, TeamScopedAPIView, TeamScopedViewSet
from apps.teams.models import Application

APPLICATION_SLUG = OpenApiParameter("application_slug", OpenApiTypes.STR, OpenApiParameter.PATH)
SNAPSHOT_ID = OpenApiParameter("snapshot_id", OpenApiTypes.INT, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(parameters=[TEAM_SLUG, APPLICATION_SLUG]),
    create=extend_schema(
        request=SnapshotWriteSerializer,
        responses={201: SnapshotDetailSerializer},
        parameters=[TEAM_SLUG, APPLICATION_SLUG],
        description="Validate the flows as a runner would, then store an immutable snapshot.",
    ),
)
class ApplicationSnapshotViewSet(TeamScopedViewSet):
    """Snapshots of one application: list and create."""

    serializer_class = SnapshotSerializer
    permissions = {"list": "flow:read", "create": "snapshot:create"}

    def application(self, permission: str) -> Application:
        return access_application(self.team_access, self.kwargs["application_slug"], permission)

    def scoped_queryset(self) -> QuerySet[Snapshot]:
        return selectors.snapshot_list(team=self.team, application=self.application("flow:read"))

    def list(self, request: Request, team_slug: str, application_slug: str) -> Response:
        return paginated_response(request, self, self.get_queryset(), SnapshotSerializer)

    def create(self, request: Request, team_slug: str, application_slug: str) -> Response:
        application = self.application("snapshot:create")
        data = validated(SnapshotWriteSerializer, request.data)
        parent = None
        if data["parent_id"] is not None:
            try:
                parent = access_snapshot(self.team_access, data["parent_id"], "flow:read")
            except NotFound:
                raise ValidationError(
                    "Unknown parent snapshot.", fields={"parent_id": "No such snapshot here."}
                ) from None
        snapshot = services.snapshot_create(
            principal=self.principal,
            application=application,
            name=data["name"],
            description=data["description"],
            flows=data["flows"],
            env=data["env"],
            runner_settings=data["runner_settings"],
            model_refs=data["model_refs"],
            parent=parent,
        )
        return Response(SnapshotDetailSerializer(snapshot).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    retrieve=extend_schema(parameters=[TEAM_SLUG, SNAPSHOT_ID]),
    destroy=extend_schema(
        parameters=[TEAM_SLUG, SNAPSHOT_ID],
        description="Delete a snapshot; 409 while a device target references it.",
    ),
)
class SnapshotViewSet(TeamScopedViewSet):
    """One snapshot: read (credential field names only), delete."""

    serializer_class = SnapshotDetailSerializer
    lookup_url_kwarg = "snapshot_id"
    permissions = {"retrieve": "flow:read", "destroy": "snapshot:create"}

    def scoped_queryset(self) -> QuerySet[Snapshot]:
        return Snapshot.objects.none()  # only single snapshots here, through access_snapshot

    def access_object(self, lookup: str, permission: str) -> Snapshot:
        return access_snapshot(self.team_access, lookup, permission)

    def retrieve(self, request: Request, team_slug: str, snapshot_id: str) -> Response:
        return Response(SnapshotDetailSerializer(self.get_object()).data)

    def destroy(self, request: Request, team_slug: str, snapshot_id: str) -> Response:
        services.snapshot_delete(principal=self.principal, snapshot=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


def export_response(snapshot: Snapshot) -> HttpResponse:
    """The snapshot's flows as a Node-RED importable flows.json (no credentials)."""
    response = HttpResponse(
        json.dumps(snapshot.flows, indent=2, ensure_ascii=False),
        content_type="application/json; charset=utf-8",
    )
    filename = f"flows-snapshot-{snapshot.pk}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class SnapshotExportView(TeamScopedAPIView):
    """``GET .../snapshots/<id>/export/``: the flows without credentials, importable in
    Node-RED."""

    permissions = {"get": "flow:read"}

    @extend_schema(
        parameters=[TEAM_SLUG, SNAPSHOT_ID],
        responses={(200, "application/json"): OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, team_slug: str, snapshot_id: str) -> HttpResponse:
        return export_response(access_snapshot(self.team_access, snapshot_id, "flow:read"))


class SigningKeyListView(TeamScopedAPIView):
    """``GET teams/<team>/signing-keys/``: the team's public signing keys and key ids."""

    permissions = {"get": "team:read"}

    @extend_schema(parameters=[TEAM_SLUG], responses={200: TeamKeySerializer(many=True)})
    def get(self, request: Request, team_slug: str) -> Response:
        keys = list(selectors.team_key_list(team=self.team))
        # A team without keys yet lists none (reading never makes one).
        listed = set(services.team_signing_keys(self.team)) if keys else set()
        rows: list[dict[str, Any]] = []
        for key in keys:
            row = dict(TeamKeySerializer(key).data)
            row["listed"] = bytes(key.signing_public) in listed
            rows.append(row)
        return Response({"results": rows})


class SigningKeyRotateView(TeamScopedAPIView):
    """``POST teams/<team>/signing-keys/rotate/``: retire the active key, make a new one."""

    permissions = {"post": "team:edit"}

    @extend_schema(parameters=[TEAM_SLUG], request=None, responses={201: TeamKeySerializer})
    def post(self, request: Request, team_slug: str) -> Response:
        key = services.team_key_rotate(principal=self.principal, team=self.team)
        return Response(TeamKeySerializer(key).data, status=status.HTTP_201_CREATED)


MODEL_ID = OpenApiParameter("model_id", OpenApiTypes.INT, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(parameters=[TEAM_SLUG]),
    create=extend_schema(
        request={"multipart/form-data": ModelUploadSerializer},
        responses={201: ModelArtifactSerializer, 200: ModelArtifactSerializer},
        parameters=[TEAM_SLUG],
        description="Upload an ONNX model (multipart ``file`` + ``name``); the same bytes "
        "again answer 200 with the existing model.",
    ),
)
class ModelViewSet(TeamScopedViewSet):
    """The team's ONNX models: list and upload."""

    serializer_class = ModelArtifactSerializer
    permissions = {"list": "model:read", "create": "model:manage"}

    def scoped_queryset(self) -> QuerySet[ModelArtifact]:
        return selectors.model_list(team=self.team)

    def list(self, request: Request, team_slug: str) -> Response:
        return paginated_response(request, self, self.get_queryset(), ModelArtifactSerializer)

    def create(self, request: Request, team_slug: str) -> Response:
        data = validated(ModelUploadSerializer, request.data)
        artifact, created = artifacts.model_upload(
            principal=self.principal,
            team=self.team,
            name=data["name"],
            chunks=data["file"].chunks(),
        )
        return Response(
            ModelArtifactSerializer(artifact).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


@extend_schema_view(
    retrieve=extend_schema(parameters=[TEAM_SLUG, MODEL_ID]),
    destroy=extend_schema(
        parameters=[TEAM_SLUG, MODEL_ID],
        description="Delete a model; 409 while a snapshot ships it.",
    ),
)
class ModelDetailViewSet(TeamScopedViewSet):
    """One model: read, delete."""

    serializer_class = ModelArtifactSerializer
    lookup_url_kwarg = "model_id"
    permissions = {"retrieve": "model:read", "destroy": "model:manage"}

    def scoped_queryset(self) -> QuerySet[ModelArtifact]:
        return ModelArtifact.objects.none()  # only single models here, through access_model

    def access_object(self, lookup: str, permission: str) -> ModelArtifact:
        return access_model(self.team_access, lookup, permission)

    def retrieve(self, request: Request, team_slug: str, model_id: str) -> Response:
        return Response(ModelArtifactSerializer(self.get_object()).data)

    def destroy(self, request: Request, team_slug: str, model_id: str) -> Response:
        artifacts.model_delete(principal=self.principal, artifact=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
