"""Team list, team creation, the team dashboard and team settings."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.accounts.principal import principal_from_request
from apps.audit.selectors import audit_event_list, audit_retention_days_get
from apps.audit.services import audit_settings_update
from apps.core.errors import ManifoldError
from apps.core.forms import add_service_error
from apps.teams import selectors, services
from apps.teams.access import TeamAccess
from apps.teams.forms import RetentionForm, TeamDeleteForm, TeamForm
from apps.teams.views.base import team_context, team_page
from apps.teams.views.getting_started import getting_started

RECENT_EVENTS = 8


@login_required
@require_http_methods(["GET"])
def home(request: HttpRequest) -> HttpResponse:
    """Every signed-in user: their teams (permission ``team:read`` is checked per team).

    Someone in exactly one team goes straight to it; ``?all=1`` (the switcher's "All teams")
    always shows the list.
    """
    teams = selectors.team_member_counts(selectors.team_list(principal_from_request(request)))
    if "all" not in request.GET:
        first_two = list(teams[:2])
        if len(first_two) == 1:
            return redirect("teams:dashboard", team_slug=first_two[0].slug)
    return render(request, "teams/home.html", {"teams": teams})


@login_required
@require_http_methods(["GET", "POST"])
def team_create(request: HttpRequest) -> HttpResponse:
    """Any signed-in user may create a team and becomes its owner."""
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(
                principal=principal_from_request(request),
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"],
            )
        except ManifoldError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Team “{team.name}” created. You are its owner.")
            return redirect("teams:dashboard", team_slug=team.slug)
    status = 400 if form.errors else 200
    return render(request, "teams/team_create.html", {"form": form}, status=status)


@team_page("team:read")
@require_http_methods(["GET"])
def dashboard(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    team = access.team
    applications = list(selectors.application_list(team=team, membership=access.membership))
    member_count = selectors.membership_list(team=team).count()
    events = []
    if access.allows("audit:read"):
        hidden = access.hidden_application_ids()
        events = list(audit_event_list(team=team, hidden_applications=hidden)[:RECENT_EVENTS])
    context = team_context(
        access,
        "dashboard",
        applications=applications,
        member_count=member_count,
        pending_invitations=(
            selectors.invitation_list(team=team, pending_only=True).count()
            if access.allows("member:invite")
            else None
        ),
        events=events,
        checklist=getting_started(access, applications),
    )
    target = request.htmx.target if request.htmx else None  # type: ignore[attr-defined]  # htmx middleware
    if target == "recent-events":
        return render(request, "teams/_recent_events.html", context)
    if target == "dashboard-body":  # the live refresh: counters, lists and activity together
        return render(request, "teams/_dashboard_body.html", context)
    if target == "dashboard-role":  # the live refresh of "you are <role>"
        return render(request, "teams/_role_badge.html", context)
    return render(request, "teams/dashboard.html", context)


@team_page("team:edit")
@require_http_methods(["GET", "POST"])
def team_settings(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    """Rename the team (``team:edit``) and set the audit retention (``team:edit``)."""
    team = access.team
    team_form = TeamForm(initial={"name": team.name, "slug": team.slug})
    retention_form = RetentionForm(
        initial={"audit_retention_days": audit_retention_days_get(team=team)}
    )
    status = 200
    if request.method == "POST":
        if request.POST.get("form") == "retention":
            retention_form = RetentionForm(request.POST)
            if retention_form.is_valid():
                try:
                    audit_settings_update(
                        principal=access.principal,
                        team=team,
                        retention_days=retention_form.cleaned_data["audit_retention_days"],
                    )
                except ManifoldError as exc:
                    add_service_error(retention_form, exc)
                else:
                    messages.success(request, "Audit retention saved.")
                    return redirect("teams:settings", team_slug=team.slug)
        else:
            team_form = TeamForm(request.POST)
            if team_form.is_valid():
                try:
                    services.team_update(
                        principal=access.principal,
                        team=team,
                        name=team_form.cleaned_data["name"],
                        slug=team_form.cleaned_data["slug"],
                    )
                except ManifoldError as exc:
                    team.refresh_from_db()
                    add_service_error(team_form, exc)
                else:
                    messages.success(request, "Team settings saved.")
                    return redirect("teams:settings", team_slug=team.slug)
        status = 400
    return render(
        request,
        "teams/settings.html",
        team_context(access, "settings", team_form=team_form, retention_form=retention_form),
        status=status,
    )


@team_page("team:delete")
@require_http_methods(["GET", "POST"])
def team_delete(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    team = access.team
    form = TeamDeleteForm(request.POST or None, slug=team.slug)
    if request.method == "POST" and form.is_valid():
        try:
            services.team_delete(principal=access.principal, team=team)
        except ManifoldError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Team “{team.name}” deleted.")
            return redirect("teams:home")
    status = 400 if form.errors else 200
    return render(
        request,
        "teams/team_delete.html",
        team_context(access, "settings", form=form),
        status=status,
    )


@team_page("team:read")
@require_http_methods(["GET", "POST"])
def team_leave(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    """Every member may leave, except the last owner (the service refuses)."""
    team = access.team
    error = None
    if request.method == "POST":
        try:
            services.member_leave(principal=access.principal, team=team)
        except ManifoldError as exc:
            error = exc.message
        else:
            messages.success(request, f"You left “{team.name}”.")
            return redirect("teams:home")
    return render(
        request,
        "teams/team_leave.html",
        team_context(access, "members", error=error),
        status=409 if error else 200,
    )
