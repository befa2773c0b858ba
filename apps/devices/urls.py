"""Fleet pages, under /teams/<team_slug>/devices/ and the application's Devices tab."""

from django.urls import URLPattern, URLResolver, path

from apps.devices import devmode_views, group_views, hosting_views, provisioning_views, views

app_name = "devices"

team = "teams/<slug:team_slug>/"
device = team + "devices/<int:device_id>/"
group = team + "devices/groups/<int:group_id>/"

urlpatterns: list[URLPattern | URLResolver] = [
    path(team + "devices/", views.fleet, name="fleet"),
    path(team + "devices/add/", provisioning_views.device_add, name="device_add"),
    path(team + "devices/tokens/", provisioning_views.token_list, name="device_tokens"),
    path(
        team + "devices/tokens/<int:token_id>/revoke/",
        provisioning_views.token_revoke,
        name="device_token_revoke",
    ),
    path(team + "devices/groups/", group_views.group_list, name="device_groups"),
    path(team + "devices/groups/new/", group_views.group_create, name="device_group_create"),
    path(group, group_views.group_detail, name="device_group"),
    path(group + "edit/", group_views.group_edit, name="device_group_edit"),
    path(group + "delete/", group_views.group_delete, name="device_group_delete"),
    path(group + "devices/", group_views.group_add_devices, name="device_group_add_devices"),
    path(
        group + "devices/remove/",
        group_views.group_remove_devices,
        name="device_group_remove_devices",
    ),
    path(
        team + "applications/<slug:app_slug>/instance/logs/",
        hosting_views.instance_logs,
        name="hosted_instance_logs",
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
    path(
        device + "registration-code/",
        provisioning_views.device_registration_code,
        name="device_registration_code",
    ),
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
