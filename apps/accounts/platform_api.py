"""REST API for platform admins (``User.is_platform_admin``): every user and team, with counts,
and switching accounts off and on. Thin: reads are selectors, writes are services.

Tenancy stays strict: nothing here shows a team's applications, members' roles or audit rows;
a platform admin who needs those joins the team like anyone else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import services
from apps.accounts.access import access_user, require_platform
from apps.accounts.models import InstallationSettings, User
from apps.accounts.principal import principal_from_request
from apps.accounts.selectors import USER_STATUSES, installation_settings_get, platform_user_list
from apps.core.api import validated
from apps.core.pagination import PAGE_PARAMETERS, page_serializer, paginated_response
from apps.teams.models import Team
from apps.teams.selectors import platform_team_list


class PlatformUserSerializer(serializers.ModelSerializer[User]):
    teams_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = User
        fields = (
            "id",
            "email",
            "full_name",
            "is_active",
            "is_platform_admin",
            "teams_count",
            "date_joined",
            "last_login",
        )
        read_only_fields = fields


PlatformUserPageSerializer = page_serializer(PlatformUserSerializer, "PlatformUserPageSerializer")


class PlatformUserFilterSerializer(serializers.Serializer[dict[str, Any]]):
    q = serializers.CharField(required=False, allow_blank=True, max_length=200)
    status = serializers.ChoiceField(choices=USER_STATUSES, required=False, default="all")


class PlatformTeamSerializer(serializers.ModelSerializer[Team]):
    members_count = serializers.IntegerField(read_only=True)
    applications_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Team
        fields = ("id", "name", "slug", "members_count", "applications_count", "created_at")
        read_only_fields = fields


PlatformTeamPageSerializer = page_serializer(PlatformTeamSerializer, "PlatformTeamPageSerializer")


class PlatformTeamFilterSerializer(serializers.Serializer[dict[str, Any]]):
    q = serializers.CharField(required=False, allow_blank=True, max_length=200)


class PlatformView(APIView):
    """Names the platform key each HTTP method needs (``apps.rbac.permissions``)."""

    permissions: ClassVar[dict[str, str]] = {"get": "platform:read"}

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # Methods without a handler still need the read key, so outsiders learn nothing (403)
        # and platform admins get the plain 405.
        key = self.permissions.get(str(request.method).lower(), "platform:read")
        require_platform(principal_from_request(request), key)


class PlatformUserListView(PlatformView):
    """GET: every account, filtered by ``q`` (email or name) and ``status``, paginated."""

    @extend_schema(
        operation_id="platform_users_list",
        parameters=[PlatformUserFilterSerializer, *PAGE_PARAMETERS],
        responses={200: PlatformUserPageSerializer},
    )
    def get(self, request: Request) -> Response:
        filters = validated(PlatformUserFilterSerializer, request.query_params)
        users = platform_user_list(search=filters.get("q", ""), status=filters["status"])
        return paginated_response(request, self, users, PlatformUserSerializer)


def _with_count(user: User) -> User:
    # The detail and action answers carry the same counts as the list rows.
    return platform_user_list().get(pk=user.pk)


def _switch_user(request: Request, user_id: int, change: Callable[..., User]) -> Response:
    """Deactivate or reactivate: ``change`` is the service, called as the request's actor."""
    principal = principal_from_request(request)
    user = access_user(principal, user_id, "platform:user_manage")
    user = change(principal=principal, user=user)
    return Response(PlatformUserSerializer(_with_count(user)).data)


class PlatformUserDetailView(PlatformView):
    """GET: one account."""

    @extend_schema(responses={200: PlatformUserSerializer})
    def get(self, request: Request, user_id: int) -> Response:
        user = access_user(principal_from_request(request), user_id, "platform:read")
        return Response(PlatformUserSerializer(_with_count(user)).data)


class PlatformUserDeactivateView(PlatformView):
    """POST: switch the account off (sessions end, tokens and sockets stop at once)."""

    permissions: ClassVar[dict[str, str]] = {"post": "platform:user_manage"}

    @extend_schema(request=None, responses={200: PlatformUserSerializer})
    def post(self, request: Request, user_id: int) -> Response:
        return _switch_user(request, user_id, services.user_deactivate)


class PlatformUserReactivateView(PlatformView):
    """POST: switch a deactivated account back on."""

    permissions: ClassVar[dict[str, str]] = {"post": "platform:user_manage"}

    @extend_schema(request=None, responses={200: PlatformUserSerializer})
    def post(self, request: Request, user_id: int) -> Response:
        return _switch_user(request, user_id, services.user_reactivate)


class PlatformTeamListView(PlatformView):
    """GET: every team with its member and application counts (no team data)."""

    @extend_schema(
        operation_id="platform_teams_list",
        parameters=[PlatformTeamFilterSerializer, *PAGE_PARAMETERS],
        responses={200: PlatformTeamPageSerializer},
    )
    def get(self, request: Request) -> Response:
        filters = validated(PlatformTeamFilterSerializer, request.query_params)
        teams = platform_team_list(search=filters.get("q", ""))
        return paginated_response(request, self, teams, PlatformTeamSerializer)


class InstallationSettingsSerializer(serializers.ModelSerializer[InstallationSettings]):
    class Meta:
        model = InstallationSettings
        fields = ("open_signup", "updated_at")
        read_only_fields = ("updated_at",)


class InstallationSettingsWriteSerializer(serializers.Serializer[dict[str, Any]]):
    open_signup = serializers.BooleanField(
        help_text="Anyone may create an account without an invitation."
    )


class PlatformSettingsView(PlatformView):
    """GET: the installation's settings; PUT/PATCH: allow or stop open sign-up (audited)."""

    permissions: ClassVar[dict[str, str]] = {
        "get": "platform:read",
        "put": "platform:settings_manage",
        "patch": "platform:settings_manage",
    }

    @extend_schema(responses={200: InstallationSettingsSerializer})
    def get(self, request: Request) -> Response:
        return Response(InstallationSettingsSerializer(installation_settings_get()).data)

    @extend_schema(
        request=InstallationSettingsWriteSerializer,
        responses={200: InstallationSettingsSerializer},
    )
    def put(self, request: Request) -> Response:
        data = validated(InstallationSettingsWriteSerializer, request.data)
        row = services.installation_settings_update(
            principal=principal_from_request(request), open_signup=data["open_signup"]
        )
        return Response(InstallationSettingsSerializer(row).data)

    @extend_schema(
        request=InstallationSettingsWriteSerializer,
        responses={200: InstallationSettingsSerializer},
    )
    def patch(self, request: Request) -> Response:
        return self.put(request)
