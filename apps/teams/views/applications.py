"""Applications: list, create, edit, delete (with confirmation), per-application roles."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.audit.selectors import audit_event_list
from apps.core.errors import ManifoldError, NotFound
from apps.core.forms import add_service_error
from apps.rbac.permissions import is_full_owner
from apps.teams import selectors, services
from apps.teams.access import TeamAccess, access_application, access_membership, access_override
from apps.teams.forms import ApplicationForm, OverrideForm
from apps.teams.views.application_tabs import application_context
from apps.teams.views.base import team_context, team_page

RECENT_EVENTS = 8


@team_page("application:read")
@require_http_methods(["GET"])
def application_list(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    applications = selectors.application_list(team=access.team, membership=access.membership)
    return render(
        request,
        "teams/applications.html",
        team_context(access, "applications", applications=applications),
    )


@team_page("application:read")
@require_http_methods(["GET"])
def application_detail(request: HttpRequest, access: TeamAccess, app_slug: str) -> HttpResponse:
    """The application's overview tab: what it is, the reader's role in it, recent activity."""
    application = access_application(access, app_slug, "application:read")
    override = access.application_role(application)
    membership = access.membership
    team_role = membership.custom_role.name if membership.custom_role else membership.role
    events = []
    if access.allows("audit:read", application):
        events = list(
            audit_event_list(
                team=access.team,
                hidden_applications=access.hidden_application_ids(),
                application=application,
            )[:RECENT_EVENTS]
        )
    context = application_context(
        access,
        application,
        "overview",
        role_here=override or team_role,
        role_is_override=override is not None,
        events=events,
    )
    if request.htmx and request.htmx.target == "recent-events":  # type: ignore[attr-defined]  # htmx middleware
        return render(request, "teams/_recent_events.html", context)
    return render(request, "teams/application_detail.html", context)


@team_page("application:create")
@require_http_methods(["GET", "POST"])
def application_create(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    form = ApplicationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            application = services.application_create(
                principal=access.principal,
                team=access.team,
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"],
                description=form.cleaned_data["description"],
            )
        except ManifoldError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Application “{application.name}” created.")
            return redirect(
                "teams:application", team_slug=access.team.slug, app_slug=application.slug
            )
    return render(
        request,
        "teams/application_form.html",
        team_context(access, "applications", form=form, application=None),
        status=400 if form.errors else 200,
    )


@team_page("application:edit")
@require_http_methods(["GET", "POST"])
def application_edit(request: HttpRequest, access: TeamAccess, app_slug: str) -> HttpResponse:
    application = access_application(access, app_slug, "application:edit")
    initial = {
        "name": application.name,
        "slug": application.slug,
        "description": application.description,
    }
    form = ApplicationForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.application_update(
                principal=access.principal,
                application=application,
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"],
                description=form.cleaned_data["description"],
            )
        except ManifoldError as exc:
            application.refresh_from_db()
            add_service_error(form, exc)
        else:
            messages.success(request, f"Application “{application.name}” saved.")
            return redirect(
                "teams:application", team_slug=access.team.slug, app_slug=application.slug
            )
    return render(
        request,
        "teams/application_form.html",
        team_context(access, "applications", form=form, application=application),
        status=400 if form.errors else 200,
    )


@team_page("application:delete")
@require_http_methods(["GET", "POST"])
def application_delete(request: HttpRequest, access: TeamAccess, app_slug: str) -> HttpResponse:
    application = access_application(access, app_slug, "application:delete")
    error = None
    if request.method == "POST":
        try:
            services.application_delete(
                principal=access.principal,
                application=application,
            )
        except ManifoldError as exc:
            error = exc.message
        else:
            messages.success(request, f"Application “{application.name}” deleted.")
            return redirect("teams:applications", team_slug=access.team.slug)
    return render(
        request,
        "teams/application_delete.html",
        team_context(access, "applications", application=application, error=error),
        status=400 if error else 200,
    )


@team_page("member:read")
@require_http_methods(["GET", "POST"])
def application_access(request: HttpRequest, access: TeamAccess, app_slug: str) -> HttpResponse:
    """Per-application roles: read with ``member:read``, change with ``member:role``."""
    application = access_application(access, app_slug, "application:read")
    team = access.team
    # Full owners always have full access; only the others can be given an override.
    candidates = [
        membership
        for membership in selectors.membership_list(team=team)
        if not is_full_owner(membership)
    ]
    form = OverrideForm(request.POST or None, memberships=candidates)
    if request.method == "POST":
        access.require("member:role")
        if request.POST.get("action") == "remove":
            override = access_override(
                access, application, request.POST.get("membership"), "member:role"
            )
            services.application_override_remove(
                principal=access.principal,
                override=override,
            )
            messages.success(
                request, f"{override.membership.user.email} uses their team role here again."
            )
            return redirect(
                "teams:application_access", team_slug=team.slug, app_slug=application.slug
            )
        if form.is_valid():
            try:
                membership = access_membership(
                    access, form.cleaned_data["membership"], "member:role"
                )
                services.application_override_set(
                    principal=access.principal,
                    membership=membership,
                    application=application,
                    role=form.cleaned_data["role"],
                )
            except NotFound:
                form.add_error("membership", "Choose a member of this team.")
            except ManifoldError as exc:
                add_service_error(form, exc)
            else:
                messages.success(request, f"Role in “{application.name}” saved.")
                return redirect(
                    "teams:application_access", team_slug=team.slug, app_slug=application.slug
                )
    overrides = selectors.override_list(team=team, application=application)
    return render(
        request,
        "teams/application_access.html",
        application_context(access, application, "access", overrides=overrides, form=form),
        status=400 if form.errors else 200,
    )
