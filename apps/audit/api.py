"""REST API of the audit trail: list, detail, streamed CSV/JSON Lines exports, retention.

Every endpoint builds on the sealed ``TeamScopedAPIView`` (404 for missing and foreign teams
alike) and names the permission each HTTP method needs in ``permissions``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any, ClassVar

from django.db.models import F, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.audit.models import MAX_RETENTION_DAYS, ActorType, AuditEvent
from apps.audit.selectors import audit_event_get, audit_event_list, audit_retention_days_get
from apps.audit.services import audit_settings_update
from apps.core.errors import NotFound
from apps.core.pagination import PAGE_PARAMETERS, page_serializer, paginated_response
from apps.teams.access import TeamAccess, access_application
from apps.teams.api_base import TeamScopedAPIView

# Rows fetched per database round trip while exporting. The export's peak memory is one chunk
# of model instances (measured ~2.6 MiB at 1000 rows, ~0.7 MiB at 200): small enough that
# memory stays flat however long the trail is (500 rows already reach the steady state),
# large enough that round trips stay cheap (50 per 5000 rows).
EXPORT_CHUNK = 100
EXPORT_FIELDS = (
    "id",
    "seq",
    "created_at",
    "event",
    "actor_type",
    "actor_id",
    "actor_label",
    "team_slug",
    "application_key",
    "application_name",
    "target_type",
    "target_id",
    "target_label",
    "before",
    "after",
    "ip",
    "user_agent",
    "request_id",
    "prev_hash",
    "hash",
)


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    application_id = serializers.IntegerField(source="application_key", read_only=True)

    class Meta:
        model = AuditEvent
        fields = (
            "id",
            "seq",
            "created_at",
            "event",
            "actor_type",
            "actor_id",
            "actor_label",
            "team_slug",
            "application_id",
            "application_name",
            "target_type",
            "target_id",
            "target_label",
            "before",
            "after",
            "ip",
            "user_agent",
            "request_id",
            "prev_hash",
            "hash",
        )
        read_only_fields = fields


class AuditFilterSerializer(serializers.Serializer[dict[str, Any]]):
    """Query parameters shared by the list and the exports."""

    event = serializers.RegexField(
        r"^[a-z0-9_.]{1,100}$", required=False, help_text="Dotted event name prefix."
    )
    actor = serializers.CharField(required=False, max_length=200)
    actor_type = serializers.ChoiceField(choices=ActorType.choices, required=False)
    application = serializers.SlugField(required=False, max_length=50)
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    q = serializers.CharField(required=False, max_length=200)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("date_from"), attrs.get("date_to")
        if start and end and start > end:
            raise serializers.ValidationError({"date_to": "Must not be before date_from."})
        return attrs


AuditEventPageSerializer = page_serializer(AuditEventSerializer, "AuditEventPageSerializer")


class AuditSettingsSerializer(serializers.Serializer[dict[str, Any]]):
    audit_retention_days = serializers.IntegerField(min_value=1, max_value=MAX_RETENTION_DAYS)


class TeamAuditView(TeamScopedAPIView):
    """The audit endpoints' shared filters, on the one tenancy base."""

    permissions: ClassVar[dict[str, str]] = {"get": "audit:read"}

    def filtered_events(self, request: Request, access: TeamAccess) -> QuerySet[AuditEvent]:
        filters = AuditFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        application = None
        if data.get("application"):
            application = access_application(access, data["application"], "application:read")
        return audit_event_list(
            team=access.team,
            hidden_applications=access.hidden_application_ids(),
            application=application,
            event_prefix=data.get("event"),
            actor=data.get("actor"),
            actor_type=data.get("actor_type"),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            text=data.get("q"),
        )


class AuditEventListView(TeamAuditView):
    """GET: the team's audit events, newest first, filtered and paginated."""

    serializer_class = AuditEventSerializer

    @extend_schema(
        operation_id="teams_audit_events_list",
        parameters=[AuditFilterSerializer, *PAGE_PARAMETERS],
        responses={200: AuditEventPageSerializer},
    )
    def get(self, request: Request, team_slug: str) -> Response:
        access = self.team_access
        events = self.filtered_events(request, access)
        return paginated_response(request, self, events, AuditEventSerializer)


class AuditEventDetailView(TeamAuditView):
    """GET: one audit event of the team."""

    serializer_class = AuditEventSerializer

    @extend_schema(responses={200: AuditEventSerializer})
    def get(self, request: Request, team_slug: str, event_id: int) -> Response:
        access = self.team_access
        event = audit_event_get(
            team=access.team,
            hidden_applications=access.hidden_application_ids(),
            event_id=event_id,
        )
        if event is None:
            raise NotFound("Audit event not found.")
        return Response(AuditEventSerializer(event).data)


def _export_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        **event.hashed_fields(),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


class _Echo:
    """A write-only file for csv.writer: returns each rendered line instead of buffering it."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
    # Spreadsheet formula injection: a cell starting with these is evaluated when opened.
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


def _csv_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for event in events.iterator(chunk_size=EXPORT_CHUNK):
        row = _export_row(event)
        yield writer.writerow([_csv_cell(row.get(name)) for name in EXPORT_FIELDS])


def _jsonl_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    for event in events.iterator(chunk_size=EXPORT_CHUNK):
        yield json.dumps(_export_row(event), sort_keys=True, ensure_ascii=False) + "\n"


class AuditExportView(TeamAuditView):
    """GET: the filtered events as a streamed file, oldest first, in constant memory.

    Subclasses name the format; each is its own class so the schema can describe its body.
    """

    permissions: ClassVar[dict[str, str]] = {"get": "audit:export"}
    export_format: ClassVar[str] = "csv"

    def export(self, request: Request, team_slug: str) -> StreamingHttpResponse:
        access = self.team_access
        events = self.filtered_events(request, access).order_by(F("seq").asc(nulls_last=True), "id")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        if self.export_format == "csv":
            response = StreamingHttpResponse(_csv_lines(events), content_type="text/csv")
        else:
            response = StreamingHttpResponse(
                _jsonl_lines(events), content_type="application/jsonl; charset=utf-8"
            )
        filename = f"audit-{access.team.slug}-{stamp}.{self.export_format}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response


class AuditCsvExportView(AuditExportView):
    """GET: CSV, one header row then one row per event (formula-looking cells are quoted)."""

    export_format = "csv"

    @extend_schema(
        operation_id="teams_audit_events_export_csv",
        parameters=[AuditFilterSerializer],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV file")},
    )
    def get(self, request: Request, team_slug: str) -> StreamingHttpResponse:
        return self.export(request, team_slug)


class AuditJsonlExportView(AuditExportView):
    """GET: JSON Lines, one JSON object per event."""

    export_format = "jsonl"

    @extend_schema(
        operation_id="teams_audit_events_export_jsonl",
        parameters=[AuditFilterSerializer],
        responses={
            (200, "application/jsonl"): OpenApiResponse(
                OpenApiTypes.STR, description="JSON Lines file"
            )
        },
    )
    def get(self, request: Request, team_slug: str) -> StreamingHttpResponse:
        return self.export(request, team_slug)


class AuditSettingsView(TeamAuditView):
    """GET (audit:read) and PUT/PATCH (team:edit) the team's audit retention."""

    permissions: ClassVar[dict[str, str]] = {
        "get": "audit:read",
        "put": "team:edit",
        "patch": "team:edit",
    }
    serializer_class = AuditSettingsSerializer

    @extend_schema(responses={200: AuditSettingsSerializer})
    def get(self, request: Request, team_slug: str) -> Response:
        access = self.team_access
        return Response({"audit_retention_days": audit_retention_days_get(team=access.team)})

    @extend_schema(request=AuditSettingsSerializer, responses={200: AuditSettingsSerializer})
    def put(self, request: Request, team_slug: str) -> Response:
        access = self.team_access
        body = AuditSettingsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        current = audit_settings_update(
            principal=self.principal,
            team=access.team,
            retention_days=body.validated_data["audit_retention_days"],
        )
        return Response({"audit_retention_days": current.audit_retention_days})

    @extend_schema(request=AuditSettingsSerializer, responses={200: AuditSettingsSerializer})
    def patch(self, request: Request, team_slug: str) -> Response:
        return self.put(request, team_slug)
