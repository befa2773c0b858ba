"""REST API of teams, applications, members, invitations and application overrides (thin)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.principal import principal_from_request
from apps.core.api import validated
from apps.core.errors import NotFound, ValidationError
from apps.core.pagination import paginated_response
from apps.rbac.access import access_custom_role
from apps.teams import selectors, services
from apps.teams.access import (
    access_application,
    access_invitation,
    access_invitation_by_token,
    access_membership,
    access_override,
)
from apps.teams.api_base import TEAM_SLUG, TeamScopedViewSet
from apps.teams.models import Application, ApplicationRoleOverride, Invitation, Membership, Team
from apps.teams.serializers import (
    ApplicationSerializer,
    ApplicationUpdateSerializer,
    ApplicationWriteSerializer,
    InvitationCreatedSerializer,
    InvitationCreateSerializer,
    InvitationPublicSerializer,
    InvitationSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    OverrideSerializer,
    OverrideWriteSerializer,
    TeamSerializer,
    TeamUpdateSerializer,
    TeamWriteSerializer,
)


class TeamListView(generics.ListCreateAPIView):  # type: ignore[type-arg]  # DRF generics are not generic at runtime
    """Teams of the signed-in user (narrowed to the token's teams); create a team."""

    serializer_class = TeamSerializer
    # Not team-scoped: listing shows only the actor's own teams; creating needs no team.
    permission = "team:read"

    def get_queryset(self) -> QuerySet[Team]:
        if getattr(self, "swagger_fake_view", False):
            return Team.objects.none()
        return selectors.team_list(principal_from_request(self.request))

    @extend_schema(request=TeamWriteSerializer, responses={201: TeamSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(TeamWriteSerializer, request.data)
        team = services.team_create(principal=principal_from_request(request), **data)
        return Response(TeamSerializer(team).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    retrieve=extend_schema(parameters=[TEAM_SLUG]),
    partial_update=extend_schema(request=TeamUpdateSerializer, parameters=[TEAM_SLUG]),
    destroy=extend_schema(parameters=[TEAM_SLUG]),
    leave=extend_schema(request=None, responses={204: None}, parameters=[TEAM_SLUG]),
)
class TeamViewSet(TeamScopedViewSet):
    """One team: read, rename, delete, leave."""

    serializer_class = TeamSerializer
    lookup_url_kwarg = "team_slug"
    team_field = "pk"
    permissions = {
        "retrieve": "team:read",
        "partial_update": "team:edit",
        "destroy": "team:delete",
        "leave": "team:read",
    }

    def scoped_queryset(self) -> QuerySet[Team]:
        return selectors.team_detail_queryset(team=self.team)

    def access_object(self, lookup: str, permission: str) -> Team:
        return self.team

    def retrieve(self, request: Request, team_slug: str) -> Response:
        return Response(TeamSerializer(self.get_object()).data)

    def partial_update(self, request: Request, team_slug: str) -> Response:
        data = validated(TeamUpdateSerializer, request.data)
        team = services.team_update(principal=self.principal, team=self.get_object(), **data)
        return Response(TeamSerializer(team).data)

    def destroy(self, request: Request, team_slug: str) -> Response:
        services.team_delete(principal=self.principal, team=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=False, methods=["post"])
    def leave(self, request: Request, team_slug: str) -> Response:
        services.member_leave(principal=self.principal, team=self.team)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(parameters=[TEAM_SLUG]),
    create=extend_schema(
        request=ApplicationWriteSerializer,
        parameters=[TEAM_SLUG],
        responses={201: ApplicationSerializer},
    ),
    retrieve=extend_schema(parameters=[TEAM_SLUG]),
    partial_update=extend_schema(request=ApplicationUpdateSerializer, parameters=[TEAM_SLUG]),
    destroy=extend_schema(parameters=[TEAM_SLUG]),
)
class ApplicationViewSet(TeamScopedViewSet):
    """Applications of a team."""

    serializer_class = ApplicationSerializer
    lookup_url_kwarg = "application_slug"
    lookup_value_regex = r"[a-z0-9-]+"
    permissions = {
        "list": "application:read",
        "create": "application:create",
        "retrieve": "application:read",
        "partial_update": "application:edit",
        "destroy": "application:delete",
    }

    def scoped_queryset(self) -> QuerySet[Application]:
        return selectors.application_list(team=self.team, membership=self.team_access.membership)

    def access_object(self, lookup: str, permission: str) -> Application:
        return access_application(self.team_access, lookup, permission)

    def list(self, request: Request, team_slug: str) -> Response:
        return paginated_response(request, self, self.get_queryset(), ApplicationSerializer)

    def create(self, request: Request, team_slug: str) -> Response:
        data = validated(ApplicationWriteSerializer, request.data)
        application = services.application_create(principal=self.principal, team=self.team, **data)
        return Response(ApplicationSerializer(application).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, team_slug: str, application_slug: str) -> Response:
        return Response(ApplicationSerializer(self.get_object()).data)

    def partial_update(self, request: Request, team_slug: str, application_slug: str) -> Response:
        data = validated(ApplicationUpdateSerializer, request.data)
        application = services.application_update(
            principal=self.principal, application=self.get_object(), **data
        )
        return Response(ApplicationSerializer(application).data)

    def destroy(self, request: Request, team_slug: str, application_slug: str) -> Response:
        services.application_delete(principal=self.principal, application=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(parameters=[TEAM_SLUG]),
    retrieve=extend_schema(parameters=[TEAM_SLUG]),
    partial_update=extend_schema(request=MembershipUpdateSerializer, parameters=[TEAM_SLUG]),
    destroy=extend_schema(parameters=[TEAM_SLUG]),
)
class MemberViewSet(TeamScopedViewSet):
    """Members of a team: list, change role or custom role, remove."""

    serializer_class = MembershipSerializer
    lookup_url_kwarg = "membership_id"
    lookup_value_regex = r"[0-9]+"
    permissions = {
        "list": "member:read",
        "retrieve": "member:read",
        "partial_update": "member:role",
        "destroy": "member:remove",
    }

    def scoped_queryset(self) -> QuerySet[Membership]:
        return selectors.membership_list(team=self.team)

    def access_object(self, lookup: str, permission: str) -> Membership:
        return access_membership(self.team_access, lookup, permission)

    def list(self, request: Request, team_slug: str) -> Response:
        return paginated_response(request, self, self.get_queryset(), MembershipSerializer)

    def retrieve(self, request: Request, team_slug: str, membership_id: str) -> Response:
        return Response(MembershipSerializer(self.get_object()).data)

    def partial_update(self, request: Request, team_slug: str, membership_id: str) -> Response:
        data = validated(MembershipUpdateSerializer, request.data)
        membership = self.get_object()
        kwargs: dict[str, Any] = {"role": data.get("role")}
        if "custom_role" in data:
            kwargs["custom_role"] = None
            if data["custom_role"] is not None:
                try:
                    kwargs["custom_role"] = access_custom_role(
                        self.team_access, data["custom_role"], "member:role"
                    )
                except NotFound:
                    raise ValidationError(
                        "Unknown custom role.", fields={"custom_role": "No such custom role."}
                    ) from None
        membership = services.member_role_change(
            principal=self.principal, membership=membership, **kwargs
        )
        return Response(MembershipSerializer(membership).data)

    def destroy(self, request: Request, team_slug: str, membership_id: str) -> Response:
        services.member_remove(principal=self.principal, membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(parameters=[TEAM_SLUG]),
    create=extend_schema(
        request=InvitationCreateSerializer,
        parameters=[TEAM_SLUG],
        responses={201: InvitationCreatedSerializer},
    ),
    retrieve=extend_schema(parameters=[TEAM_SLUG]),
    destroy=extend_schema(parameters=[TEAM_SLUG], description="Revoke a pending invitation."),
)
class InvitationViewSet(TeamScopedViewSet):
    """Invitations of a team: list, invite (email + link), revoke."""

    serializer_class = InvitationSerializer
    lookup_url_kwarg = "invitation_id"
    lookup_value_regex = r"[0-9]+"
    permissions = {
        "list": "member:invite",
        "create": "member:invite",
        "retrieve": "member:invite",
        "destroy": "member:invite",
    }

    def scoped_queryset(self) -> QuerySet[Invitation]:
        return selectors.invitation_list(team=self.team)

    def access_object(self, lookup: str, permission: str) -> Invitation:
        return access_invitation(self.team_access, lookup, permission)

    def list(self, request: Request, team_slug: str) -> Response:
        return paginated_response(request, self, self.get_queryset(), InvitationSerializer)

    def create(self, request: Request, team_slug: str) -> Response:
        data = validated(InvitationCreateSerializer, request.data)
        created = services.invitation_create(
            principal=self.principal,
            team=self.team,
            base_url=request.build_absolute_uri("/"),
            **data,
        )
        body = InvitationCreatedSerializer(created.invitation).data | {"link": created.link}
        return Response(body, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, team_slug: str, invitation_id: str) -> Response:
        return Response(InvitationSerializer(self.get_object()).data)

    def destroy(self, request: Request, team_slug: str, invitation_id: str) -> Response:
        services.invitation_revoke(principal=self.principal, invitation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


APPLICATION_SLUG = OpenApiParameter("application_slug", OpenApiTypes.STR, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(parameters=[TEAM_SLUG, APPLICATION_SLUG]),
    create=extend_schema(
        request=OverrideWriteSerializer,
        parameters=[TEAM_SLUG, APPLICATION_SLUG],
        responses={200: OverrideSerializer},
    ),
    destroy=extend_schema(parameters=[TEAM_SLUG, APPLICATION_SLUG]),
)
class ApplicationOverrideViewSet(TeamScopedViewSet):
    """Per-application roles of members ("none" = no access). POST sets (creates or replaces)."""

    serializer_class = OverrideSerializer
    lookup_url_kwarg = "membership_id"
    lookup_value_regex = r"[0-9]+"
    team_field = "application__team"
    permissions = {
        "list": "member:read",
        "create": "member:role",
        "destroy": "member:role",
    }

    @property
    def application(self) -> Application:
        cached: Application | None = getattr(self, "_application", None)
        if cached is None:
            cached = access_application(
                self.team_access, self.kwargs["application_slug"], "application:read"
            )
            self._application = cached
        return cached

    def scoped_queryset(self) -> QuerySet[ApplicationRoleOverride]:
        return selectors.override_list(team=self.team, application=self.application)

    def access_object(self, lookup: str, permission: str) -> ApplicationRoleOverride:
        return access_override(self.team_access, self.application, lookup, permission)

    def team_id_of(self, obj: Any) -> int | None:
        return int(obj.application.team_id)

    def application_of(self, obj: Any) -> Application | None:
        # Managing overrides is a team-level act (member:role), not one inside the application.
        return None

    def list(self, request: Request, team_slug: str, application_slug: str) -> Response:
        return paginated_response(request, self, self.get_queryset(), OverrideSerializer)

    def create(self, request: Request, team_slug: str, application_slug: str) -> Response:
        data = validated(OverrideWriteSerializer, request.data)
        application = self.application
        try:
            membership = access_membership(self.team_access, data["membership"], "member:role")
        except NotFound:
            raise ValidationError(
                "Unknown member.", fields={"membership": "No such member in this team."}
            ) from None
        override = services.application_override_set(
            principal=self.principal,
            membership=membership,
            application=application,
            role=data["role"],
        )
        return Response(OverrideSerializer(override).data)

    def destroy(
        self, request: Request, team_slug: str, application_slug: str, membership_id: str
    ) -> Response:
        services.application_override_remove(principal=self.principal, override=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationResponseView(APIView):
    """The invitee's side: see an invitation by its link token, accept or decline it.

    Not team-scoped: the link token is the lookup, and the services check that the signed-in
    user is the invited address.
    """

    permission = "invitation:respond"

    @extend_schema(responses={200: InvitationPublicSerializer})
    def get(self, request: Request, token: str) -> Response:
        invitation = access_invitation_by_token(principal_from_request(request), token)
        return Response(InvitationPublicSerializer(invitation).data)


class InvitationAcceptView(APIView):
    permission = "invitation:respond"

    @extend_schema(request=None, responses={201: MembershipSerializer})
    def post(self, request: Request, token: str) -> Response:
        principal = principal_from_request(request)
        invitation = access_invitation_by_token(principal, token)
        membership = services.invitation_accept(principal=principal, invitation=invitation)
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class InvitationDeclineView(APIView):
    permission = "invitation:respond"

    @extend_schema(request=None, responses={200: InvitationPublicSerializer})
    def post(self, request: Request, token: str) -> Response:
        principal = principal_from_request(request)
        invitation = access_invitation_by_token(principal, token)
        invitation = services.invitation_decline(principal=principal, invitation=invitation)
        return Response(InvitationPublicSerializer(invitation).data)
