"""API routes of development instances (under /api/v1/)."""

from django.urls import URLPattern, URLResolver, path

from apps.devices import hosting_api

instance = "teams/<slug:team_slug>/applications/<slug:app_slug>/instance/"
action = hosting_api.HostedInstanceActionView.as_view()

urlpatterns: list[URLPattern | URLResolver] = [
    path(instance, hosting_api.HostedInstanceView.as_view(), name="api-hosted-instance"),
    path(instance + "start/", action, {"action": "start"}, name="api-hosted-instance-start"),
    path(instance + "stop/", action, {"action": "stop"}, name="api-hosted-instance-stop"),
    path(instance + "restart/", action, {"action": "restart"}, name="api-hosted-instance-restart"),
    path(
        instance + "logs/",
        hosting_api.HostedInstanceLogsView.as_view(),
        name="api-hosted-instance-logs",
    ),
]
