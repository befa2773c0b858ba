"""API routes of the signed-in user and their tokens (under /api/v1/)."""

from django.urls import URLPattern, URLResolver, path

from apps.accounts import api, platform_api

urlpatterns: list[URLPattern | URLResolver] = [
    path("me/", api.MeView.as_view(), name="api-me"),
    path("me/password/", api.PasswordChangeView.as_view(), name="api-me-password"),
    path("tokens/", api.TokenListView.as_view(), name="api-token-list"),
    path("tokens/<int:token_id>/", api.TokenDetailView.as_view(), name="api-token-detail"),
    # platform admins only
    path("platform/users/", platform_api.PlatformUserListView.as_view(), name="api-platform-users"),
    path(
        "platform/users/<int:user_id>/",
        platform_api.PlatformUserDetailView.as_view(),
        name="api-platform-user",
    ),
    path(
        "platform/users/<int:user_id>/deactivate/",
        platform_api.PlatformUserDeactivateView.as_view(),
        name="api-platform-user-deactivate",
    ),
    path(
        "platform/users/<int:user_id>/reactivate/",
        platform_api.PlatformUserReactivateView.as_view(),
        name="api-platform-user-reactivate",
    ),
    path("platform/teams/", platform_api.PlatformTeamListView.as_view(), name="api-platform-teams"),
    path(
        "platform/settings/",
        platform_api.PlatformSettingsView.as_view(),
        name="api-platform-settings",
    ),
]
