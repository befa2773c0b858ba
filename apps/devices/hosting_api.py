"""API of an application's development instance (thin: the work is in services.hosting).

``/api/v1/teams/<team>/applications/<app_slug>/instance/``: GET its state (``device:read``),
POST create it (``device:manage``; 409 ``instance_exists``, 409 ``ports_exhausted``), DELETE it;
``…/instance/start/``, ``stop/``, ``restart/``: POST (``device:manage``). The reconciler makes
the process follow within its interval (2 s). ``…/instance/logs/?lines=N``: GET the newest N
(1 to 1000, default 100) lines of the runner's output (``device:read``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.errors import NotFound, ValidationError
from apps.devices.hosting import MAX_LOG_LINES
from apps.devices.models import HostedInstance
from apps.devices.services import hosting
from apps.teams.access import access_application
from apps.teams.api_base import TeamScopedAPIView
from apps.teams.models import Application


class HostedDeviceSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    last_seen = serializers.DateTimeField(allow_null=True, read_only=True)


class HostedInstanceSerializer(serializers.Serializer[Any]):
    device = HostedDeviceSerializer(read_only=True)
    driver = serializers.CharField(read_only=True)
    desired = serializers.CharField(read_only=True)
    state = serializers.CharField(read_only=True)
    port = serializers.IntegerField(read_only=True)
    status_port = serializers.IntegerField(read_only=True)
    status_url = serializers.CharField(read_only=True)
    restarts = serializers.IntegerField(read_only=True)
    last_error = serializers.CharField(read_only=True)
    state_changed_at = serializers.DateTimeField(allow_null=True, read_only=True)


class HostedInstanceCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(required=False, max_length=100)


def instance_json(instance: HostedInstance) -> dict[str, Any]:
    device = instance.device
    return {
        "device": {
            "id": device.pk,
            "name": device.name,
            "status": device.status,
            "last_seen": device.last_seen,
        },
        "driver": device.hosted_driver,
        "desired": instance.desired,
        "state": instance.state,
        "port": instance.port,
        "status_port": instance.status_port,
        "status_url": f"http://127.0.0.1:{instance.status_port}/",
        "restarts": instance.restarts,
        "last_error": instance.last_error,
        "state_changed_at": instance.state_changed_at,
    }


def _refreshing(request: Request, response: Response) -> Response:
    """The overview card's buttons post here with htmx: reload the page to show the change."""
    if request.method != "GET" and request.headers.get("HX-Request") == "true":
        response["HX-Refresh"] = "true"
    return response


class _InstanceView(TeamScopedAPIView):
    def application(self, slug: str, permission: str) -> Application:
        return access_application(self.team_access, slug, permission)

    def instance(self, slug: str, permission: str) -> HostedInstance:
        found = hosting.hosted_instance_of(self.application(slug, permission))
        if found is None:
            raise NotFound("This application has no development instance.")
        return found

    def answer(self, instance: HostedInstance, code: int = status.HTTP_200_OK) -> Response:
        fresh = hosting.hosted_instance_of(instance.application)
        if fresh is None:
            raise NotFound("This application has no development instance.")
        return _refreshing(self.request, Response(instance_json(fresh), status=code))


class HostedInstanceView(_InstanceView):
    permissions = {"get": "device:read", "post": "device:manage", "delete": "device:manage"}

    @extend_schema(responses={200: HostedInstanceSerializer})
    def get(self, request: Request, team_slug: str, app_slug: str) -> Response:
        return self.answer(self.instance(app_slug, "device:read"))

    @extend_schema(
        request=HostedInstanceCreateSerializer, responses={201: HostedInstanceSerializer}
    )
    def post(self, request: Request, team_slug: str, app_slug: str) -> Response:
        body = request.data if isinstance(request.data, dict) else None
        if body is None:
            raise ValidationError("The body must be a JSON object.")
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise ValidationError("name must be text.", fields={"name": "Text, 1 to 100."})
        application = self.application(app_slug, "device:manage")
        device = hosting.hosted_instance_create(
            principal=self.principal, application=application, name=name
        )
        return self.answer(device.hosted, status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, team_slug: str, app_slug: str) -> Response:
        instance = self.instance(app_slug, "device:manage")
        hosting.hosted_instance_delete(principal=self.principal, instance=instance)
        return _refreshing(request, Response(status=status.HTTP_204_NO_CONTENT))


class HostedInstanceActionView(_InstanceView):
    permissions = {"post": "device:manage"}
    actions = {
        "start": hosting.hosted_instance_start,
        "stop": hosting.hosted_instance_stop,
        "restart": hosting.hosted_instance_restart,
    }

    @extend_schema(request=None, responses={200: HostedInstanceSerializer})
    def post(self, request: Request, team_slug: str, app_slug: str, action: str) -> Response:
        instance = self.instance(app_slug, "device:manage")
        changed = self.actions[action](principal=self.principal, instance=instance)
        return self.answer(changed)


class HostedInstanceLogsSerializer(serializers.Serializer[Any]):
    state = serializers.CharField(read_only=True)
    lines = serializers.ListField(child=serializers.CharField(), read_only=True)


DEFAULT_LOG_LINES = 100


def log_lines_param(raw: object) -> int:
    """``?lines=`` as a number; the service bounds it."""
    if raw is None or raw == "":
        return DEFAULT_LOG_LINES
    text = str(raw).strip()
    if not text.isdigit() or len(text) > 6:
        raise ValidationError(
            f"lines must be a whole number of 1 to {MAX_LOG_LINES}.",
            fields={"lines": f"1 to {MAX_LOG_LINES}."},
        )
    return int(text)


class HostedInstanceLogsView(_InstanceView):
    permissions = {"get": "device:read"}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "lines", int, description=f"newest lines to answer (1 to {MAX_LOG_LINES}, 100)"
            )
        ],
        responses={200: HostedInstanceLogsSerializer},
    )
    def get(self, request: Request, team_slug: str, app_slug: str) -> Response:
        lines = log_lines_param(request.query_params.get("lines"))
        instance = self.instance(app_slug, "device:read")
        found = hosting.hosted_instance_logs(instance, lines)
        return Response({"state": instance.state, "lines": found})
