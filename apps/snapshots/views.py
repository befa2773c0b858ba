"""Snapshot pages: the application's "Snapshots" tab, the new-snapshot form, one snapshot."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.core.errors import ManifoldError
from apps.core.forms import add_service_error
from apps.snapshots import selectors, services
from apps.snapshots.access import access_snapshot
from apps.snapshots.api import export_response
from apps.snapshots.forms import SnapshotForm
from apps.teams.access import TeamAccess, access_application
from apps.teams.views.application_tabs import application_context
from apps.teams.views.base import team_page

PAGE_SIZE = 50


@team_page("flow:read")
@require_http_methods(["GET"])
def snapshot_list(request: HttpRequest, access: TeamAccess, app_slug: str) -> HttpResponse:
    application = access_application(access, app_slug, "flow:read")
    page = Paginator(
        selectors.snapshot_list(team=access.team, application=application), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    context = application_context(
        access,
        application,
        "snapshots",
        page=page,
        can_create=access.allows("snapshot:create", application),
    )
    return render(request, "snapshots/list.html", context)


@team_page("snapshot:create")
@require_http_methods(["GET", "POST"])
def snapshot_create(request: HttpRequest, access: TeamAccess, app_slug: str) -> HttpResponse:
    application = access_application(access, app_slug, "snapshot:create")
    form = SnapshotForm(request.POST or None, request.FILES or None)
    problems: list[dict[str, object]] = []
    if request.method == "POST" and form.is_valid():
        try:
            snapshot = services.snapshot_create(
                principal=access.principal,
                application=application,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                flows=form.cleaned_data["flows"],
            )
        except services.FlowsRejected as exc:
            problems = [p.as_dict() for p in exc.problems]
            count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
            form.add_error(None, f"A runner would reject these flows ({count}, listed by node).")
        except ManifoldError as exc:
            add_service_error(form, exc, {"flows": "flows_text", "credentials": "flows_text"})
        else:
            messages.success(request, f"Snapshot “{snapshot.name}” created.")
            return redirect(
                "snapshots:snapshot_detail",
                team_slug=access.team.slug,
                app_slug=application.slug,
                snapshot_id=snapshot.pk,
            )
    context = application_context(access, application, "snapshots", form=form, problems=problems)
    return render(request, "snapshots/form.html", context, status=400 if form.errors else 200)


@team_page("flow:read")
@require_http_methods(["GET"])
def snapshot_detail(
    request: HttpRequest, access: TeamAccess, app_slug: str, snapshot_id: int
) -> HttpResponse:
    application = access_application(access, app_slug, "flow:read")
    snapshot = access_snapshot(access, snapshot_id, "flow:read")
    if snapshot.application_id != application.pk:
        return redirect(
            "snapshots:snapshot_detail",
            team_slug=access.team.slug,
            app_slug=snapshot.application.slug,
            snapshot_id=snapshot.pk,
        )
    context = application_context(
        access,
        application,
        "snapshots",
        snapshot=snapshot,
        node_types=selectors.node_types(snapshot.flows),
        credential_fields=sorted(services.snapshot_credential_fields(snapshot).items()),
        env=sorted(snapshot.env.items()),
    )
    return render(request, "snapshots/detail.html", context)


@team_page("flow:read")
@require_http_methods(["GET"])
def snapshot_export(
    request: HttpRequest, access: TeamAccess, app_slug: str, snapshot_id: int
) -> HttpResponse:
    access_application(access, app_slug, "flow:read")
    return export_response(access_snapshot(access, snapshot_id, "flow:read"))
