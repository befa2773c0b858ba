"""API routes of snapshots and signing keys (under /api/v1/teams/<team_slug>/)."""

from django.urls import URLPattern, path

from apps.snapshots import api

urlpatterns: list[URLPattern] = [
    path(
        "applications/<slug:application_slug>/snapshots/",
        api.ApplicationSnapshotViewSet.as_view({"get": "list", "post": "create"}),
        name="api-snapshot-list",
    ),
    path(
        "snapshots/<int:snapshot_id>/",
        api.SnapshotViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="api-snapshot-detail",
    ),
    path(
        "snapshots/<int:snapshot_id>/export/",
        api.SnapshotExportView.as_view(),
        name="api-snapshot-export",
    ),
    path(
        "models/",
        api.ModelViewSet.as_view({"get": "list", "post": "create"}),
        name="api-model-list",
    ),
    path(
        "models/<int:model_id>/",
        api.ModelDetailViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="api-model-detail",
    ),
    path("signing-keys/", api.SigningKeyListView.as_view(), name="api-signing-key-list"),
    path("signing-keys/rotate/", api.SigningKeyRotateView.as_view(), name="api-signing-key-rotate"),
]
