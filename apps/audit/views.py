"""Audit log pages: per team and per application, htmx filters, export links, live refresh."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from apps.audit.forms import EVENT_PREFIXES, AuditFilterForm
from apps.audit.selectors import audit_event_list
from apps.teams import selectors as team_selectors
from apps.teams.access import TeamAccess, access_application
from apps.teams.models import Application
from apps.teams.views.application_tabs import application_context
from apps.teams.views.base import team_context, team_page

PAGE_SIZE = 50


def _export_query(data: dict[str, Any], application: Application | None) -> str:
    """The cleaned filters as the API's query string, so exports match what is on screen."""
    query = QueryDict(mutable=True)
    for name in ("event", "actor", "date_from", "date_to"):
        value = data.get(name)
        if value:
            query[name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    if application is not None:
        query["application"] = application.slug
    return query.urlencode()


def _audit_page(
    request: HttpRequest, access: TeamAccess, application: Application | None
) -> HttpResponse:
    team = access.team
    applications = (
        None
        if application is not None
        else list(team_selectors.application_list(team=team, membership=access.membership))
    )
    form = AuditFilterForm(request.GET or None, applications=applications)
    filter_application = application
    page = None
    export_query = ""
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        status = 200
        data = form.cleaned_data if form.is_bound else {}
        if application is None and data.get("application"):
            # The slug came from the choices of this team; access re-checks "no access".
            filter_application = access_application(access, data["application"], "application:read")
        events = audit_event_list(
            team=team,
            hidden_applications=access.hidden_application_ids(),
            application=filter_application,
            event_prefix=data.get("event") or None,
            actor=data.get("actor") or None,
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )
        page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
        export_query = _export_query(data, filter_application)
    query = request.GET.copy()
    query.pop("page", None)
    extra = {
        "form": form,
        "page": page,
        "export_query": export_query,
        "filter_query": query.urlencode(),
        # Told on the folded filter toggle (phones), so hidden filters are never a surprise.
        "active_filters": sum(1 for name in form.fields if request.GET.get(name)),
        "event_prefixes": EVENT_PREFIXES,
        "members": team_selectors.membership_list(team=team),
    }
    context = (
        team_context(access, "audit", application=None, **extra)
        if application is None
        else application_context(access, application, "audit", **extra)
    )
    if request.htmx:  # type: ignore[attr-defined]  # django-htmx middleware
        return render(request, "audit/_results.html", context, status=status)
    return render(request, "audit/log.html", context, status=status)


@team_page("audit:read")
@require_http_methods(["GET"])
def team_log(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    """The team's audit log."""
    return _audit_page(request, access, None)


@team_page("audit:read")
@require_http_methods(["GET"])
def application_log(request: HttpRequest, access: TeamAccess, app_slug: str) -> HttpResponse:
    """One application's audit log (the application must be visible to the reader)."""
    application = access_application(access, app_slug, "application:read")
    return _audit_page(request, access, application)
