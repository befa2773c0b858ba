"""REST API v1: each app contributes its own routes; the schema and docs live here."""

from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

urlpatterns = [
    path("", include("apps.accounts.api_urls")),
    path("", include("apps.teams.api_urls")),
    path("", include("apps.audit.api_urls")),
    path("teams/<slug:team_slug>/", include("apps.flows.api_urls")),
    path("", include("apps.devices.api_urls")),
    path("teams/<slug:team_slug>/", include("apps.snapshots.api_urls")),
    path("", include("apps.devices.link_urls")),
    path("", include("apps.devices.hosting_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script under a strict CSP.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
