"""Audit API routes, included under /api/v1/."""

from django.urls import URLPattern, URLResolver, path

from apps.audit import api

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "teams/<slug:team_slug>/audit-events/",
        api.AuditEventListView.as_view(),
        name="api-audit-event-list",
    ),
    path(
        "teams/<slug:team_slug>/audit-events/export.csv",
        api.AuditCsvExportView.as_view(),
        name="api-audit-event-export-csv",
    ),
    path(
        "teams/<slug:team_slug>/audit-events/export.jsonl",
        api.AuditJsonlExportView.as_view(),
        name="api-audit-event-export-jsonl",
    ),
    path(
        "teams/<slug:team_slug>/audit-events/<int:event_id>/",
        api.AuditEventDetailView.as_view(),
        name="api-audit-event-detail",
    ),
    path(
        "teams/<slug:team_slug>/audit-settings/",
        api.AuditSettingsView.as_view(),
        name="api-audit-settings",
    ),
]
