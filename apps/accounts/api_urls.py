"""API routes of the signed-in user and their tokens (under /api/v1/)."""

from django.urls import URLPattern, URLResolver, path

from apps.accounts import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("me/", api.MeView.as_view(), name="api-me"),
    path("me/password/", api.PasswordChangeView.as_view(), name="api-me-password"),
    path("tokens/", api.TokenListView.as_view(), name="api-token-list"),
    path("tokens/<int:token_id>/", api.TokenDetailView.as_view(), name="api-token-detail"),
]
