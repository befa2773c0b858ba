"""API routes of flows (under /api/v1/teams/<team_slug>/)."""

from django.urls import URLPattern, path

from apps.flows import api

urlpatterns: list[URLPattern] = [
    path(
        "flows/validate/",
        api.FlowValidationViewSet.as_view({"post": "validate"}),
        name="api-flow-validate",
    ),
]
