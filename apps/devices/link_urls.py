"""API routes of the device link's HTTP side (under /api/v1/): bundles, targets, history."""

from django.urls import URLPattern, URLResolver, path

from apps.devices import bundles, link_api

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "devices/bundles/<int:generation>/<path:part>",
        bundles.bundle_part,
        name="api-device-bundle-part",
    ),
    path(
        "teams/<slug:team_slug>/devices/<int:device_id>/target/",
        link_api.DeviceTargetView.as_view(),
        name="api-device-target",
    ),
    path(
        "teams/<slug:team_slug>/devices/<int:device_id>/history/",
        link_api.DeviceHistoryView.as_view(),
        name="api-device-history",
    ),
    path(
        "teams/<slug:team_slug>/applications/<slug:application_slug>/deploy/",
        link_api.ApplicationDeployView.as_view(),
        name="api-application-deploy",
    ),
]
