"""API routes of the fleet, included under /api/v1/: the device's own and the team's."""

from django.urls import URLPattern, URLResolver, include, path

from apps.devices import api, devmode_api
from apps.teams.api_urls import COLLECTION, ITEM, routes

team_routes: list[URLPattern | URLResolver] = [
    path("devices/", api.DeviceViewSet.as_view(routes(get="list")), name="api-device-list"),
    path("devices/bulk/", api.DeviceBulkView.as_view(), name="api-device-bulk"),
    path(
        "devices/registration-codes/",
        api.RegistrationCodeView.as_view(),
        name="api-device-registration-code",
    ),
    path("devices/<int:device_id>/", api.DeviceViewSet.as_view(ITEM), name="api-device-detail"),
    path(
        "devices/<int:device_id>/suspend/",
        api.DeviceViewSet.as_view(routes(post="suspend")),
        name="api-device-suspend",
    ),
    path(
        "devices/<int:device_id>/resume/",
        api.DeviceViewSet.as_view(routes(post="resume")),
        name="api-device-resume",
    ),
    path(
        "devices/<int:device_id>/decommission/",
        api.DeviceViewSet.as_view(routes(post="decommission")),
        name="api-device-decommission",
    ),
    path(
        "devices/<int:device_id>/developer-mode/",
        devmode_api.DeveloperModeView.as_view(),
        name="api-device-developer-mode",
    ),
    path(
        "devices/<int:device_id>/flows/",
        devmode_api.DeviceFlowsView.as_view(),
        name="api-device-flows",
    ),
    path(
        "devices/<int:device_id>/flows/state/",
        devmode_api.DeviceFlowsStateView.as_view(),
        name="api-device-flows-state",
    ),
    path(
        "devices/<int:device_id>/inject/<str:node_id>/",
        devmode_api.DeviceInjectView.as_view(),
        name="api-device-inject",
    ),
    path(
        "provisioning-tokens/",
        api.ProvisioningTokenViewSet.as_view(COLLECTION),
        name="api-provisioning-token-list",
    ),
    path(
        "provisioning-tokens/<int:token_id>/",
        api.ProvisioningTokenViewSet.as_view(routes(get="retrieve", delete="destroy")),
        name="api-provisioning-token-detail",
    ),
    path(
        "device-groups/", api.DeviceGroupViewSet.as_view(COLLECTION), name="api-device-group-list"
    ),
    path(
        "device-groups/<int:group_id>/",
        api.DeviceGroupViewSet.as_view(ITEM),
        name="api-device-group-detail",
    ),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("devices/register/", api.DeviceRegisterView.as_view(), name="api-device-register"),
    path("devices/self/", api.DeviceSelfView.as_view(), name="api-device-self"),
    path("teams/<slug:team_slug>/", include(team_routes)),
]
