"""Fleet pages, under /teams/<team_slug>/devices/ and the application's Devices tab."""

from django.urls import URLPattern, URLResolver, path

from apps.devices import devmode_views, views

app_name = "devices"

team = "teams/<slug:team_slug>/"
device = team + "devices/<int:device_id>/"

urlpatterns: list[URLPattern | URLResolver] = [
    path(team + "devices/", views.fleet, name="fleet"),
    path(team + "devices/add/", views.device_add, name="device_add"),
    path(team + "devices/tokens/", views.token_list, name="device_tokens"),
    path(
        team + "devices/tokens/<int:token_id>/revoke/",
        views.token_revoke,
        name="device_token_revoke",
    ),
    path(
        team + "applications/<slug:app_slug>/devices/",
        views.application_devices,
        name="application_devices",
    ),
    path(device, views.device_detail, name="device_detail"),
    path(device + "settings/", views.device_settings, name="device_settings"),
    path(device + "deploy/", views.device_deploy, name="device_deploy"),
    path(device + "suspend/", views.device_suspend, name="device_suspend"),
    path(device + "resume/", views.device_resume, name="device_resume"),
    path(device + "decommission/", views.device_decommission, name="device_decommission"),
    path(device + "delete/", views.device_delete, name="device_delete"),
    path(device + "developer/", devmode_views.device_developer, name="device_developer"),
    path(
        device + "developer/enter/",
        devmode_views.device_developer_enter,
        name="device_developer_enter",
    ),
    path(
        device + "developer/leave/",
        devmode_views.device_developer_leave,
        name="device_developer_leave",
    ),
    path(
        device + "developer/deploy/",
        devmode_views.device_developer_deploy,
        name="device_developer_deploy",
    ),
    path(
        device + "developer/inject/<str:node_id>/",
        devmode_views.device_developer_inject,
        name="device_developer_inject",
    ),
]
