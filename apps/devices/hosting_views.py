"""The development instance card's log panel: the newest lines of the hosted runner's output,
as an HTML fragment the card polls (htmx, every few seconds). Same service as the API's
``…/instance/logs/``."""

from __future__ import annotations

from typing import Final

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from apps.devices.services.hosting import hosted_instance_logs, hosted_instance_of
from apps.teams.access import TeamAccess, access_application
from apps.teams.views.base import team_page

PANEL_LINES: Final = 200


@team_page("device:read")
@require_http_methods(["GET"])
def instance_logs(request: HttpRequest, access: TeamAccess, app_slug: str) -> HttpResponse:
    application = access_application(access, app_slug, "device:read")
    instance = hosted_instance_of(application)
    lines = hosted_instance_logs(instance, PANEL_LINES) if instance is not None else []
    response = render(
        request,
        "devices/_hosted_logs.html",
        {"instance": instance, "lines": lines, "limit": PANEL_LINES},
    )
    response["Cache-Control"] = "no-store"
    return response
