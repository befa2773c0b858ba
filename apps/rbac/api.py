"""REST API of custom roles and the permission table (thin)."""

from __future__ import annotations

from dataclasses import asdict

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import validated
from apps.core.pagination import paginated_response
from apps.rbac import services
from apps.rbac.access import access_custom_role
from apps.rbac.models import CustomRole
from apps.rbac.permissions import CUSTOM_ROLE_KEYS, PERMISSIONS
from apps.rbac.selectors import custom_role_list
from apps.rbac.serializers import (
    CustomRoleSerializer,
    CustomRoleUpdateSerializer,
    CustomRoleWriteSerializer,
    PermissionRowSerializer,
)
from apps.teams.api_base import TEAM_SLUG, TeamScopedViewSet


class PermissionTableView(APIView):
    """The permission table: each key, its minimum role, and whether custom roles may hold it."""

    permission = "team:read"

    @extend_schema(responses={200: PermissionRowSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rows = [
            {"key": key, **asdict(spec), "custom_role_allowed": key in CUSTOM_ROLE_KEYS}
            for key, spec in PERMISSIONS.items()
        ]
        return Response(PermissionRowSerializer(rows, many=True).data)


@extend_schema_view(
    list=extend_schema(parameters=[TEAM_SLUG]),
    create=extend_schema(
        request=CustomRoleWriteSerializer,
        parameters=[TEAM_SLUG],
        responses={201: CustomRoleSerializer},
    ),
    retrieve=extend_schema(parameters=[TEAM_SLUG]),
    partial_update=extend_schema(request=CustomRoleUpdateSerializer, parameters=[TEAM_SLUG]),
    destroy=extend_schema(parameters=[TEAM_SLUG]),
)
class CustomRoleViewSet(TeamScopedViewSet):
    """Custom roles of a team."""

    serializer_class = CustomRoleSerializer
    lookup_url_kwarg = "role_id"
    lookup_value_regex = r"[0-9]+"
    permissions = {
        "list": "customrole:read",
        "retrieve": "customrole:read",
        "create": "customrole:manage",
        "partial_update": "customrole:manage",
        "destroy": "customrole:manage",
    }

    def scoped_queryset(self) -> QuerySet[CustomRole]:
        return custom_role_list(team=self.team)

    def access_object(self, lookup: str, permission: str) -> CustomRole:
        return access_custom_role(self.team_access, lookup, permission)

    def list(self, request: Request, team_slug: str) -> Response:
        return paginated_response(request, self, self.get_queryset(), CustomRoleSerializer)

    def create(self, request: Request, team_slug: str) -> Response:
        data = validated(CustomRoleWriteSerializer, request.data)
        role = services.custom_role_create(principal=self.principal, team=self.team, **data)
        return Response(CustomRoleSerializer(role).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, team_slug: str, role_id: str) -> Response:
        return Response(CustomRoleSerializer(self.get_object()).data)

    def partial_update(self, request: Request, team_slug: str, role_id: str) -> Response:
        data = validated(CustomRoleUpdateSerializer, request.data)
        role = services.custom_role_update(principal=self.principal, role=self.get_object(), **data)
        return Response(CustomRoleSerializer(role).data)

    def destroy(self, request: Request, team_slug: str, role_id: str) -> Response:
        services.custom_role_delete(principal=self.principal, role=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
