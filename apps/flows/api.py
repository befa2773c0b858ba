"""REST API of flows (thin): validation against the runner's own validator."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api import validated
from apps.flows.serializers import FlowsValidateSerializer, FlowsValidationSerializer
from apps.flows.validation import flows_valid, flows_validate
from apps.teams.api_base import TeamScopedViewSet
from apps.teams.models import Team

TEAM_SLUG = OpenApiParameter("team_slug", OpenApiTypes.STR, OpenApiParameter.PATH)


class FlowValidationViewSet(TeamScopedViewSet):
    """``POST teams/<team>/flows/validate/``: what a runner would reject in these flows."""

    permissions = {"validate": "flow:edit"}

    def scoped_queryset(self) -> QuerySet[Team]:
        return Team.objects.none()  # validation reads and writes nothing

    @extend_schema(
        request=FlowsValidateSerializer,
        responses={200: FlowsValidationSerializer},
        parameters=[TEAM_SLUG],
        description="Dry-run the flows as a runner would deploy them; nothing is stored.",
    )
    @action(detail=False, methods=["post"])
    def validate(self, request: Request, team_slug: str) -> Response:
        flows = validated(FlowsValidateSerializer, request.data)["flows"]
        problems = flows_validate(flows)
        return Response(
            {"valid": flows_valid(problems), "problems": [p.as_dict() for p in problems]}
        )
