"""API of targets and history (thin: the work is in services.targets and services.link).

``POST teams/<team>/devices/<id>/target/`` ``{"snapshot": id}`` and
``POST teams/<team>/applications/<app>/deploy/`` ``{"snapshot": id}`` issue targets
(``flow:deploy``; devices in developer mode are skipped and listed, 409 when all are);
``GET teams/<team>/devices/<id>/history/?at=<ISO time>`` answers which snapshot was active then
and the recent history (``device:read``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.errors import ValidationError
from apps.devices.access import access_device
from apps.devices.models import DeviceStateChange, DeviceTarget
from apps.devices.services.link import device_history, device_state_at
from apps.devices.services.targets import (
    DEPLOY_PERMISSION,
    application_set_target,
    device_set_target,
    target_snapshot_of,
)
from apps.teams.access import access_application
from apps.teams.api_base import TeamScopedAPIView


def target_json(target: DeviceTarget) -> dict[str, Any]:
    return {
        "device": target.device_id,
        "snapshot": target.snapshot_id,
        "generation": target.generation,
        "outcome": target.outcome,
        "reason": target.reason,
        "digest": target.digest,
        "reported_at": target.reported_at,
    }


def change_json(change: DeviceStateChange) -> dict[str, Any]:
    return {
        "at": change.at,
        "status": change.status,
        "snapshot": change.snapshot_id,
        "generation": change.active_target.generation if change.active_target else None,
        "reason": change.reason,
    }


def _snapshot_id(request: Request) -> Any:
    data = request.data if isinstance(request.data, dict) else {}
    if "snapshot" not in data:
        raise ValidationError("Name the snapshot to deploy.", fields={"snapshot": "Required."})
    return data["snapshot"]


class SnapshotChoiceSerializer(serializers.Serializer[Any]):
    snapshot = serializers.IntegerField(help_text="Id of a snapshot of the device's application.")


class TargetSerializer(serializers.Serializer[Any]):
    device = serializers.IntegerField(read_only=True)
    snapshot = serializers.IntegerField(read_only=True)
    generation = serializers.IntegerField(read_only=True)
    outcome = serializers.CharField(read_only=True)
    reason = serializers.CharField(read_only=True)
    digest = serializers.CharField(read_only=True)
    reported_at = serializers.DateTimeField(allow_null=True, read_only=True)


class SkippedDeviceSerializer(serializers.Serializer[Any]):
    device = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    code = serializers.CharField(read_only=True, help_text="developer_mode")


class TargetsSerializer(serializers.Serializer[Any]):
    targets = TargetSerializer(many=True, read_only=True)
    skipped = SkippedDeviceSerializer(
        many=True, read_only=True, help_text="Devices left alone: they are in developer mode."
    )


class StateChangeSerializer(serializers.Serializer[Any]):
    at = serializers.DateTimeField(read_only=True)
    status = serializers.CharField(read_only=True)
    snapshot = serializers.IntegerField(allow_null=True, read_only=True)
    generation = serializers.IntegerField(allow_null=True, read_only=True)
    reason = serializers.CharField(read_only=True)


class HistorySerializer(serializers.Serializer[Any]):
    at = serializers.DateTimeField(allow_null=True, read_only=True)
    active = StateChangeSerializer(allow_null=True, read_only=True)
    history = StateChangeSerializer(many=True, read_only=True)


class DeviceTargetView(TeamScopedAPIView):
    permissions = {"post": DEPLOY_PERMISSION}

    @extend_schema(request=SnapshotChoiceSerializer, responses={201: TargetSerializer})
    def post(self, request: Request, team_slug: str, device_id: str) -> Response:
        device = access_device(self.team_access, device_id, DEPLOY_PERMISSION)
        snapshot = target_snapshot_of(self.team_access, device.application, _snapshot_id(request))
        target = device_set_target(principal=self.principal, device=device, snapshot=snapshot)
        return Response(target_json(target), status=201)


class ApplicationDeployView(TeamScopedAPIView):
    permissions = {"post": DEPLOY_PERMISSION}

    @extend_schema(request=SnapshotChoiceSerializer, responses={201: TargetsSerializer})
    def post(self, request: Request, team_slug: str, application_slug: str) -> Response:
        application = access_application(self.team_access, application_slug, DEPLOY_PERMISSION)
        snapshot = target_snapshot_of(self.team_access, application, _snapshot_id(request))
        deployment = application_set_target(
            principal=self.principal, application=application, snapshot=snapshot
        )
        body = {
            "targets": [target_json(t) for t in deployment.targets],
            "skipped": [
                {"device": device.pk, "name": device.name, "code": "developer_mode"}
                for device in deployment.skipped
            ],
        }
        return Response(body, status=201)


class DeviceHistoryView(TeamScopedAPIView):
    permissions = {"get": "device:read"}

    @extend_schema(
        parameters=[OpenApiParameter("at", OpenApiTypes.DATETIME, required=False)],
        responses={200: HistorySerializer},
    )
    def get(self, request: Request, team_slug: str, device_id: str) -> Response:
        device = access_device(self.team_access, device_id, "device:read")
        raw = request.query_params.get("at")
        at = None
        if raw:
            at = parse_datetime(raw)
            if at is None:
                raise ValidationError(
                    "'at' must be an ISO 8601 date and time.", fields={"at": "Invalid."}
                )
            if timezone.is_naive(at):
                at = timezone.make_aware(at, dt.UTC)
        change = device_state_at(device, at) if at is not None else None
        return Response(
            {
                "at": at,
                "active": change_json(change) if change is not None else None,
                "history": [change_json(row) for row in device_history(device)],
            }
        )
