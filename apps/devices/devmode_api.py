"""API of developer mode (thin: the work is in ``services.devmode``), under
``/api/v1/teams/<team>/devices/<id>/``, every call ``device:develop``:

- ``POST developer-mode/``: enter; ``DELETE developer-mode/`` ``{"keep": bool, "name": str}``:
  leave, keeping the device's flows as a new snapshot (its new target) or reverting to the
  target.
- ``GET flows/``, ``POST flows/`` (validated with the platform's validator first; nodes'
  ``credentials`` go sealed to the device's key and are kept for a kept snapshot, never
  answered),
  ``GET flows/state/``, ``POST inject/<node_id>/``: the device's own Admin API over its link,
  only while it is in developer mode (409 ``not_in_developer_mode``), only while it is linked
  (409 ``device_offline``; 504 ``device_timeout`` when it does not answer).

The views are synchronous DRF views on the sealed team base (the project's one auth path):
under ASGI each request's synchronous code has a thread of its own, so one waiting for a
device holds no other request up.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.errors import ValidationError
from apps.devices import selectors
from apps.devices.access import access_device
from apps.devices.link_api import TargetSerializer, target_json
from apps.devices.models import Device
from apps.devices.serializers import DeviceSerializer
from apps.devices.services.devmode import (
    DEVELOP_PERMISSION,
    device_dev_deploy,
    device_dev_flows,
    device_dev_inject,
    device_dev_state,
    device_developer_mode_enter,
    device_developer_mode_leave,
)
from apps.teams.api_base import TEAM_SLUG, TeamScopedAPIView

DEVICE_ID = OpenApiParameter("device_id", OpenApiTypes.INT, OpenApiParameter.PATH)
NODE_ID = OpenApiParameter("node_id", OpenApiTypes.STR, OpenApiParameter.PATH)
PARAMETERS = [TEAM_SLUG, DEVICE_ID]


class LeaveSerializer(serializers.Serializer[Any]):
    keep = serializers.BooleanField(
        help_text="true: keep the device's flows as a new snapshot (its new target); "
        "false: revert to the target."
    )
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="Name of the kept snapshot (default: the device's name and the time).",
    )


class LeftSerializer(serializers.Serializer[Any]):
    device = DeviceSerializer(read_only=True)
    snapshot = serializers.IntegerField(
        allow_null=True, read_only=True, help_text="The kept snapshot (null when reverting)."
    )
    target = TargetSerializer(allow_null=True, read_only=True)


class FlowsSerializer(serializers.Serializer[Any]):
    flows = serializers.ListField(
        child=serializers.DictField(),
        help_text="Node-RED flows.json; a node's credentials ({field: text}) are sealed to "
        "the device, and __PWRD__ keeps a stored value",
    )
    rev = serializers.CharField(required=False, read_only=True)


class DeployedSerializer(serializers.Serializer[Any]):
    rev = serializers.CharField(read_only=True)
    failures = serializers.ListField(read_only=True, required=False)
    missing_types = serializers.ListField(read_only=True, required=False)


class EngineStateSerializer(serializers.Serializer[Any]):
    state = serializers.CharField(read_only=True, help_text="start, stop or safe")


class InjectedSerializer(serializers.Serializer[Any]):
    injected = serializers.CharField(read_only=True)


class _DeviceDevView(TeamScopedAPIView):
    def device(self, device_id: str) -> Device:
        return access_device(self.team_access, device_id, DEVELOP_PERMISSION)

    def device_json(self, device: Device) -> Any:
        return DeviceSerializer(selectors.device_get(self.team_access, device.pk) or device).data


class DeveloperModeView(_DeviceDevView):
    permissions = {"post": DEVELOP_PERMISSION, "delete": DEVELOP_PERMISSION}

    @extend_schema(request=None, responses={200: DeviceSerializer}, parameters=PARAMETERS)
    def post(self, request: Request, team_slug: str, device_id: str) -> Response:
        device = self.device(device_id)
        device = device_developer_mode_enter(principal=self.principal, device=device)
        return Response(self.device_json(device))

    @extend_schema(request=LeaveSerializer, responses={200: LeftSerializer}, parameters=PARAMETERS)
    def delete(self, request: Request, team_slug: str, device_id: str) -> Response:
        serializer = LeaveSerializer(data=request.data)
        if not serializer.is_valid():
            raise ValidationError(
                'Say whether to keep the changes: {"keep": true} or {"keep": false}.',
                fields={name: [str(e) for e in errs] for name, errs in serializer.errors.items()},
            )
        data = serializer.validated_data
        left = device_developer_mode_leave(
            principal=self.principal,
            device=self.device(device_id),
            keep=data["keep"],
            name=data.get("name", ""),
        )
        return Response(
            {
                "device": self.device_json(left.device),
                "snapshot": left.snapshot_id,
                "target": target_json(left.target) if left.target is not None else None,
            }
        )


class DeviceFlowsView(_DeviceDevView):
    permissions = {"get": DEVELOP_PERMISSION, "post": DEVELOP_PERMISSION}

    @extend_schema(responses={200: FlowsSerializer}, parameters=PARAMETERS)
    def get(self, request: Request, team_slug: str, device_id: str) -> Response:
        return Response(device_dev_flows(principal=self.principal, device=self.device(device_id)))

    @extend_schema(
        request=FlowsSerializer, responses={200: DeployedSerializer}, parameters=PARAMETERS
    )
    def post(self, request: Request, team_slug: str, device_id: str) -> Response:
        result = device_dev_deploy(
            principal=self.principal, device=self.device(device_id), flows=request.data
        )
        return Response(result)


class DeviceFlowsStateView(_DeviceDevView):
    permissions = {"get": DEVELOP_PERMISSION}

    @extend_schema(responses={200: EngineStateSerializer}, parameters=PARAMETERS)
    def get(self, request: Request, team_slug: str, device_id: str) -> Response:
        return Response(device_dev_state(principal=self.principal, device=self.device(device_id)))


class DeviceInjectView(_DeviceDevView):
    permissions = {"post": DEVELOP_PERMISSION}

    @extend_schema(
        request=None, responses={200: InjectedSerializer}, parameters=[*PARAMETERS, NODE_ID]
    )
    def post(self, request: Request, team_slug: str, device_id: str, node_id: str) -> Response:
        device_dev_inject(principal=self.principal, device=self.device(device_id), node_id=node_id)
        return Response({"injected": node_id})
