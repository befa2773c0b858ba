"""Snapshot pages, mounted at / under an application, and the team's model pages."""

from django.urls import URLPattern, URLResolver, path

from apps.snapshots import views

app_name = "snapshots"

application = "teams/<slug:team_slug>/applications/<slug:app_slug>/snapshots/"

urlpatterns: list[URLPattern | URLResolver] = [
    path("teams/<slug:team_slug>/models/", views.model_list, name="models"),
    path(
        "teams/<slug:team_slug>/models/<int:model_id>/delete/",
        views.model_delete,
        name="model_delete",
    ),
    path(application, views.snapshot_list, name="snapshots"),
    path(application + "new/", views.snapshot_create, name="snapshot_create"),
    path(application + "<int:snapshot_id>/", views.snapshot_detail, name="snapshot_detail"),
    path(
        application + "<int:snapshot_id>/export/",
        views.snapshot_export,
        name="snapshot_export",
    ),
]
