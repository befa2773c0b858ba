"""Team pages, mounted at /. Team-scoped pages live under /teams/<team_slug>/."""

from django.urls import URLPattern, URLResolver, path

from apps.teams.views import applications, members, platform, roles, teams

app_name = "teams"

team = "teams/<slug:team_slug>/"
application = team + "applications/<slug:app_slug>/"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", teams.home, name="home"),
    path("create-team/", teams.team_create, name="team_create"),
    path("invitations/<str:token>/", members.invitation_respond, name="invitation"),
    # platform admins only (names and counts; no team data)
    path("platform/users/", platform.user_list, name="platform_users"),
    path("platform/users/new/", platform.user_create, name="platform_user_create"),
    path(
        "platform/users/<int:user_id>/deactivate/",
        platform.user_deactivate,
        name="platform_user_deactivate",
    ),
    path(
        "platform/users/<int:user_id>/reactivate/",
        platform.user_reactivate,
        name="platform_user_reactivate",
    ),
    path("platform/teams/", platform.team_list, name="platform_teams"),
    path("platform/signup/", platform.signup_switch, name="platform_signup"),
    path(team, teams.dashboard, name="dashboard"),
    path(team + "settings/", teams.team_settings, name="settings"),
    path(team + "delete/", teams.team_delete, name="team_delete"),
    path(team + "leave/", teams.team_leave, name="leave"),
    path(team + "applications/", applications.application_list, name="applications"),
    path(team + "applications/new/", applications.application_create, name="application_create"),
    path(application, applications.application_detail, name="application"),
    path(application + "edit/", applications.application_edit, name="application_edit"),
    path(application + "delete/", applications.application_delete, name="application_delete"),
    path(application + "access/", applications.application_access, name="application_access"),
    path(team + "members/", members.member_list, name="members"),
    path(team + "members/invite/", members.member_invite, name="member_invite"),
    path(team + "members/<int:membership_id>/role/", members.member_role, name="member_role"),
    path(team + "members/<int:membership_id>/remove/", members.member_remove, name="member_remove"),
    path(
        team + "invitations/<int:invitation_id>/revoke/",
        members.invitation_revoke,
        name="invitation_revoke",
    ),
    path(team + "roles/", roles.role_list, name="roles"),
    path(team + "roles/new/", roles.role_create, name="role_create"),
    path(team + "roles/<int:role_id>/edit/", roles.role_edit, name="role_edit"),
    path(team + "roles/<int:role_id>/delete/", roles.role_delete, name="role_delete"),
]
