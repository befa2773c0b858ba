"""Root URL configuration: pages, the REST API under /api/v1/, health."""

from django.urls import include, path

from config.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("config.api_urls")),
    path("accounts/", include("apps.accounts.urls")),
    path("", include("apps.audit.urls")),
    path("", include("apps.teams.urls")),
    path("", include("apps.snapshots.urls")),
    path("", include("apps.devices.urls")),
]
