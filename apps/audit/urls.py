"""Audit log pages, mounted at /."""

from django.urls import URLPattern, URLResolver, path

from apps.audit import views

app_name = "audit"

urlpatterns: list[URLPattern | URLResolver] = [
    path("teams/<slug:team_slug>/audit/", views.team_log, name="team_log"),
    path(
        "teams/<slug:team_slug>/applications/<slug:app_slug>/audit/",
        views.application_log,
        name="application_log",
    ),
]
