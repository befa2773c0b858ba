"""REST API of the fleet (thin): the device's own endpoints and the team's fleet endpoints.

Device endpoints (``/api/v1/devices/…``) authenticate with the device credential only and answer
errors with a top-level ``code`` and ``message`` (what docs/device-protocol.md promises the agent)
beside the usual ``error`` object. Team endpoints (``/api/v1/teams/<team>/…``) are sealed
team-scoped bases like every other team resource.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import permissions, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import exception_handler, validated
from apps.core.errors import NotFound, ValidationError
from apps.core.pagination import paginated_response
from apps.devices import selectors, services
from apps.devices.access import access_device, access_device_group, access_provisioning_token
from apps.devices.auth import DeviceCredentialAuthentication
from apps.devices.models import Device, DeviceGroup, ProvisioningToken
from apps.devices.serializers import (
    DeviceBulkResultSerializer,
    DeviceBulkSerializer,
    DeviceErrorSerializer,
    DeviceFilterSerializer,
    DeviceGroupSerializer,
    DeviceGroupUpdateSerializer,
    DeviceGroupWriteSerializer,
    DeviceRegisteredSerializer,
    DeviceRegisterSerializer,
    DeviceSelfSerializer,
    DeviceSerializer,
    DeviceUpdateSerializer,
    ProvisioningTokenCreatedSerializer,
    ProvisioningTokenCreateSerializer,
    ProvisioningTokenSerializer,
    RegistrationCodeCreatedSerializer,
    RegistrationCodeCreateSerializer,
)
from apps.devices.services.targets import target_snapshot_of
from apps.teams.access import TeamAccess, access_application
from apps.teams.api_base import TEAM_SLUG, TeamScopedAPIView, TeamScopedViewSet
from apps.teams.models import Application
from edge_runner.protocol.link import DEFAULT_HEARTBEAT_SECONDS, PROTOCOL_VERSION
from edge_runner.protocol.manifest import public_key_b64

DEVICE_ID = OpenApiParameter("device_id", OpenApiTypes.INT, OpenApiParameter.PATH)
GROUP_ID = OpenApiParameter("group_id", OpenApiTypes.INT, OpenApiParameter.PATH)
TOKEN_ID = OpenApiParameter("token_id", OpenApiTypes.INT, OpenApiParameter.PATH)


# --- the device's own endpoints ---------------------------------------------------------------


# drf-spectacular registers extensions in an untyped __init_subclass__.
class DeviceCredentialScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]  # drf-spectacular is untyped
    target_class = "apps.devices.auth.DeviceCredentialAuthentication"
    name = "deviceCredential"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mfd_<secret>",
            "description": "A device credential, answered once by /api/v1/devices/register/.",
        }


def device_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The one error body, plus ``code``/``message`` at the top for the agent."""
    response = exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "error" in response.data:
        error = response.data["error"]
        response.data = {"code": error["code"], "message": error["message"], **response.data}
    return response


class IsDevice(permissions.BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, Device)


def _signing_keys(device: Device) -> list[str]:
    return [public_key_b64(key) for key in services.registration_signing_keys(device.team)]


class DeviceRegisterView(APIView):
    """A runner registers with a provisioning token or a registration code (no user)."""

    authentication_classes: list[type[Any]] = []
    permission_classes = [permissions.AllowAny]

    def get_exception_handler(self) -> Any:
        return device_exception_handler

    @extend_schema(
        request=DeviceRegisterSerializer,
        responses={201: DeviceRegisteredSerializer, 400: DeviceErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise ValidationError("The body must be a JSON object.", code="malformed")
        device, credential = services.device_register(
            token=body.get("token"),  # type: ignore[arg-type]  # the service checks the type
            name=body.get("name"),
            sealing_key_b64=body.get("sealing_key"),  # type: ignore[arg-type]  # checked there
            agent_version=body.get("agent_version") or "",
            hostname=body.get("hostname") or "",
        )
        answer = {
            "device": {"id": device.pk, "name": device.name, "team": str(device.team_id)},
            "credential": credential,
            "signing_keys": _signing_keys(device),
            "protocol": PROTOCOL_VERSION,
            "heartbeat_seconds": int(DEFAULT_HEARTBEAT_SECONDS),
        }
        return Response(answer, status=status.HTTP_201_CREATED)


class DeviceSelfView(APIView):
    """The device reads itself with its credential (401 ``decommissioned`` tells it to wipe)."""

    authentication_classes = [DeviceCredentialAuthentication]
    permission_classes = [IsDevice]

    def get_exception_handler(self) -> Any:
        return device_exception_handler

    @extend_schema(responses={200: DeviceSelfSerializer, 401: DeviceErrorSerializer})
    def get(self, request: Request) -> Response:
        device = request.auth
        assert isinstance(device, Device)  # noqa: S101  # IsDevice guarantees it
        return Response(
            {
                "id": device.pk,
                "name": device.name,
                "status": device.status,
                "signing_keys": _signing_keys(device),
            }
        )


# --- the team's fleet -------------------------------------------------------------------------


def _application(access: TeamAccess, slug: Any, permission: str) -> Application | None:
    """A body's application slug (None stays None) as an object; unknown, foreign or hidden
    slugs are a 400 on the field."""
    if slug is None:
        return None
    try:
        return access_application(access, slug, permission)
    except NotFound:
        raise ValidationError(
            "Unknown application.", fields={"application": "No such application in this team."}
        ) from None


def _groups(access: TeamAccess, ids: list[int], field: str = "groups") -> list[DeviceGroup]:
    try:
        return [access_device_group(access, pk, "device:manage") for pk in dict.fromkeys(ids)]
    except NotFound:
        raise ValidationError(
            "Unknown device group.", fields={field: "No such device group in this team."}
        ) from None


@extend_schema_view(
    list=extend_schema(parameters=[TEAM_SLUG, DeviceFilterSerializer]),
    retrieve=extend_schema(parameters=[TEAM_SLUG, DEVICE_ID]),
    partial_update=extend_schema(request=DeviceUpdateSerializer, parameters=[TEAM_SLUG, DEVICE_ID]),
    destroy=extend_schema(parameters=[TEAM_SLUG, DEVICE_ID], description="Decommission, remove."),
    suspend=extend_schema(request=None, parameters=[TEAM_SLUG, DEVICE_ID]),
    resume=extend_schema(request=None, parameters=[TEAM_SLUG, DEVICE_ID]),
    decommission=extend_schema(request=None, parameters=[TEAM_SLUG, DEVICE_ID]),
)
class DeviceViewSet(TeamScopedViewSet):
    """Devices of a team: list (filtered), read, change, suspend, resume, decommission, delete."""

    serializer_class = DeviceSerializer
    lookup_url_kwarg = "device_id"
    permissions = {
        "list": "device:read",
        "retrieve": "device:read",
        "partial_update": "device:manage",
        "destroy": "device:manage",
        "suspend": "device:manage",
        "resume": "device:manage",
        "decommission": "device:manage",
    }

    def scoped_queryset(self) -> QuerySet[Device]:
        return selectors.devices_for(self.team_access)

    def access_object(self, lookup: str, permission: str) -> Device:
        return access_device(self.team_access, lookup, permission)

    def list(self, request: Request, team_slug: str) -> Response:
        filters = validated(DeviceFilterSerializer, request.query_params)
        access = self.team_access
        application = None
        if filters.get("application"):
            application = access_application(access, filters["application"], "device:read")
        group = None
        if filters.get("group"):
            group = access_device_group(access, filters["group"], "device:read")
        devices = selectors.devices_for(
            access,
            application=application,
            group=group,
            tag=filters.get("tag"),
            status=filters.get("status"),
            text=filters.get("q"),
        )
        return paginated_response(request, self, devices, DeviceSerializer)

    def retrieve(self, request: Request, team_slug: str, device_id: str) -> Response:
        return Response(DeviceSerializer(self.get_object()).data)

    def partial_update(self, request: Request, team_slug: str, device_id: str) -> Response:
        data = validated(DeviceUpdateSerializer, request.data)
        device = self.get_object()
        changes: dict[str, Any] = {k: data[k] for k in ("name", "tags", "env") if k in data}
        if "application" in data:
            changes["application"] = _application(
                self.team_access, data["application"], "device:manage"
            )
        if "groups" in data:
            changes["groups"] = _groups(self.team_access, data["groups"])
        device = services.device_update(principal=self.principal, device=device, **changes)
        return Response(DeviceSerializer(self._fresh(device)).data)

    def destroy(self, request: Request, team_slug: str, device_id: str) -> Response:
        services.device_delete(principal=self.principal, device=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def suspend(self, request: Request, team_slug: str, device_id: str) -> Response:
        device = services.device_suspend(principal=self.principal, device=self.get_object())
        return Response(DeviceSerializer(self._fresh(device)).data)

    @action(detail=True, methods=["post"])
    def resume(self, request: Request, team_slug: str, device_id: str) -> Response:
        device = services.device_resume(principal=self.principal, device=self.get_object())
        return Response(DeviceSerializer(self._fresh(device)).data)

    @action(detail=True, methods=["post"])
    def decommission(self, request: Request, team_slug: str, device_id: str) -> Response:
        device = services.device_decommission(principal=self.principal, device=self.get_object())
        return Response(DeviceSerializer(self._fresh(device)).data)

    def _fresh(self, device: Device) -> Device:
        found = selectors.device_get(self.team_access, device.pk)
        if found is None:
            raise NotFound("Device not found.")
        return found


class DeviceBulkView(TeamScopedAPIView):
    """POST one action on many devices: all of them change, or none (one unknown id: 404)."""

    permissions = {"post": "device:manage"}

    @extend_schema(
        request=DeviceBulkSerializer,
        responses={200: DeviceBulkResultSerializer},
        parameters=[TEAM_SLUG],
    )
    def post(self, request: Request, team_slug: str) -> Response:
        data = validated(DeviceBulkSerializer, request.data)
        access = self.team_access
        devices = [access_device(access, pk, "device:manage") for pk in dict.fromkeys(data["ids"])]
        principal, kind = self.principal, data["action"]
        changed: list[Device] = []
        if kind == "move":
            application = _application(access, data["application"], "device:manage")
            changed = services.devices_update(
                principal=principal, devices=devices, application=application
            )
        elif kind == "tag":
            changed = services.devices_update(
                principal=principal, devices=devices, add_tags=data["tags"]
            )
        elif kind == "untag":
            changed = services.devices_update(
                principal=principal, devices=devices, remove_tags=data["tags"]
            )
        elif kind == "suspend":
            changed = services.devices_suspend(principal=principal, devices=devices)
        elif kind == "resume":
            changed = services.devices_resume(principal=principal, devices=devices)
        else:
            services.devices_delete(principal=principal, devices=devices)
        fresh = selectors.devices_for(access).filter(pk__in=[device.pk for device in changed])
        body = {
            "action": kind,
            "count": len(devices),
            "devices": DeviceSerializer(fresh, many=True).data,
        }
        return Response(body)


class RegistrationCodeView(TeamScopedAPIView):
    """POST: a pending device and its one-use registration code (24 h), shown once."""

    permissions = {"post": "device:manage"}

    @extend_schema(
        request=RegistrationCodeCreateSerializer,
        responses={201: RegistrationCodeCreatedSerializer},
        parameters=[TEAM_SLUG],
    )
    def post(self, request: Request, team_slug: str) -> Response:
        data = validated(RegistrationCodeCreateSerializer, request.data)
        access = self.team_access
        application = _application(access, data.get("application"), "device:manage")
        device, code = services.registration_code_create(
            principal=self.principal,
            team=self.team,
            name=data["name"],
            application=application,
            groups=_groups(access, data.get("groups", [])),
        )
        fresh = selectors.device_get(access, device.pk)
        body = {"device": DeviceSerializer(fresh).data, "code": code}
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(parameters=[TEAM_SLUG]),
    create=extend_schema(
        request=ProvisioningTokenCreateSerializer,
        parameters=[TEAM_SLUG],
        responses={201: ProvisioningTokenCreatedSerializer},
    ),
    retrieve=extend_schema(parameters=[TEAM_SLUG, TOKEN_ID]),
    destroy=extend_schema(parameters=[TEAM_SLUG, TOKEN_ID], description="Revoke the token."),
)
class ProvisioningTokenViewSet(TeamScopedViewSet):
    """Provisioning tokens of a team: list, create (the token is shown once), revoke."""

    serializer_class = ProvisioningTokenSerializer
    lookup_url_kwarg = "token_id"
    permissions = {
        "list": "device:read",
        "retrieve": "device:read",
        "create": "device:manage",
        "destroy": "device:manage",
    }

    def scoped_queryset(self) -> QuerySet[ProvisioningToken]:
        return selectors.provisioning_token_list(self.team_access)

    def access_object(self, lookup: str, permission: str) -> ProvisioningToken:
        return access_provisioning_token(self.team_access, lookup, permission)

    def list(self, request: Request, team_slug: str) -> Response:
        return paginated_response(request, self, self.get_queryset(), ProvisioningTokenSerializer)

    def create(self, request: Request, team_slug: str) -> Response:
        data = validated(ProvisioningTokenCreateSerializer, request.data)
        access = self.team_access
        group_id = data.get("group")
        application = _application(access, data.get("application"), "device:manage")
        snapshot_id = data.get("snapshot")
        token, raw = services.provisioning_token_create(
            principal=self.principal,
            team=self.team,
            name=data["name"],
            application=application,
            snapshot=(
                target_snapshot_of(access, application, snapshot_id) if snapshot_id else None
            ),
            group=_groups(access, [group_id], "group")[0] if group_id else None,
            tags=data.get("tags", []),
            expires_at=data.get("expires_at"),
            max_uses=data.get("max_uses"),
        )
        body = ProvisioningTokenSerializer(token).data | {"token": raw}
        return Response(body, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, team_slug: str, token_id: str) -> Response:
        return Response(ProvisioningTokenSerializer(self.get_object()).data)

    def destroy(self, request: Request, team_slug: str, token_id: str) -> Response:
        services.provisioning_token_revoke(principal=self.principal, token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(parameters=[TEAM_SLUG]),
    create=extend_schema(
        request=DeviceGroupWriteSerializer,
        parameters=[TEAM_SLUG],
        responses={201: DeviceGroupSerializer},
    ),
    retrieve=extend_schema(parameters=[TEAM_SLUG, GROUP_ID]),
    partial_update=extend_schema(
        request=DeviceGroupUpdateSerializer, parameters=[TEAM_SLUG, GROUP_ID]
    ),
    destroy=extend_schema(parameters=[TEAM_SLUG, GROUP_ID]),
)
class DeviceGroupViewSet(TeamScopedViewSet):
    """Device groups of a team (shared env vars)."""

    serializer_class = DeviceGroupSerializer
    lookup_url_kwarg = "group_id"
    permissions = {
        "list": "device:read",
        "retrieve": "device:read",
        "create": "device:manage",
        "partial_update": "device:manage",
        "destroy": "device:manage",
    }

    def scoped_queryset(self) -> QuerySet[DeviceGroup]:
        return selectors.device_group_list(self.team_access)

    def access_object(self, lookup: str, permission: str) -> DeviceGroup:
        return access_device_group(self.team_access, lookup, permission)

    def list(self, request: Request, team_slug: str) -> Response:
        return paginated_response(request, self, self.get_queryset(), DeviceGroupSerializer)

    def create(self, request: Request, team_slug: str) -> Response:
        data = validated(DeviceGroupWriteSerializer, request.data)
        group = services.device_group_create(principal=self.principal, team=self.team, **data)
        return Response(DeviceGroupSerializer(group).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, team_slug: str, group_id: str) -> Response:
        return Response(DeviceGroupSerializer(self.get_object()).data)

    def partial_update(self, request: Request, team_slug: str, group_id: str) -> Response:
        data = validated(DeviceGroupUpdateSerializer, request.data)
        group = services.device_group_update(
            principal=self.principal, group=self.get_object(), **data
        )
        return Response(DeviceGroupSerializer(group).data)

    def destroy(self, request: Request, team_slug: str, group_id: str) -> Response:
        services.device_group_delete(principal=self.principal, group=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
