"""API routes of teams and everything inside them (under /api/v1/)."""

from typing import Any

from django.urls import URLPattern, URLResolver, include, path

from apps.rbac import api as rbac_api
from apps.teams import api


def routes(**methods: str) -> dict[str, Any]:
    """HTTP method -> viewset action (typed loosely: as_view() wants str | ViewSetAction)."""
    return methods


COLLECTION = routes(get="list", post="create")
ITEM = routes(get="retrieve", patch="partial_update", delete="destroy")

team_routes: list[URLPattern | URLResolver] = [
    path("", api.TeamViewSet.as_view(ITEM), name="api-team-detail"),
    path("leave/", api.TeamViewSet.as_view(routes(post="leave")), name="api-team-leave"),
    path("applications/", api.ApplicationViewSet.as_view(COLLECTION), name="api-application-list"),
    path(
        "applications/<slug:application_slug>/",
        api.ApplicationViewSet.as_view(ITEM),
        name="api-application-detail",
    ),
    path(
        "applications/<slug:application_slug>/overrides/",
        api.ApplicationOverrideViewSet.as_view(COLLECTION),
        name="api-override-list",
    ),
    path(
        "applications/<slug:application_slug>/overrides/<int:membership_id>/",
        api.ApplicationOverrideViewSet.as_view(routes(delete="destroy")),
        name="api-override-detail",
    ),
    path(
        "members/",
        api.MemberViewSet.as_view(routes(get="list")),
        name="api-member-list",
    ),
    path("members/<int:membership_id>/", api.MemberViewSet.as_view(ITEM), name="api-member-detail"),
    path("invitations/", api.InvitationViewSet.as_view(COLLECTION), name="api-invitation-list"),
    path(
        "invitations/<int:invitation_id>/",
        api.InvitationViewSet.as_view(routes(get="retrieve", delete="destroy")),
        name="api-invitation-detail",
    ),
    path(
        "custom-roles/", rbac_api.CustomRoleViewSet.as_view(COLLECTION), name="api-custom-role-list"
    ),
    path(
        "custom-roles/<int:role_id>/",
        rbac_api.CustomRoleViewSet.as_view(ITEM),
        name="api-custom-role-detail",
    ),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("permissions/", rbac_api.PermissionTableView.as_view(), name="api-permission-table"),
    path("teams/", api.TeamListView.as_view(), name="api-team-list"),
    path("teams/<slug:team_slug>/", include(team_routes)),
    path(
        "invitations/<str:token>/", api.InvitationResponseView.as_view(), name="api-invitation-show"
    ),
    path(
        "invitations/<str:token>/accept/",
        api.InvitationAcceptView.as_view(),
        name="api-invitation-accept",
    ),
    path(
        "invitations/<str:token>/decline/",
        api.InvitationDeclineView.as_view(),
        name="api-invitation-decline",
    ),
]
