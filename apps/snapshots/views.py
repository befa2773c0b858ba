"""Snapshot pages: the application's "Snapshots" tab, the new-snapshot form, one snapshot; and
the team's "Models" page (list, upload, delete)."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.core.errors import ManifoldError
from apps.core.forms import add_service_error
from apps.snapshots import artifacts, selectors, services
from apps.snapshots.access import access_model, access_snapshot
from apps.snapshots.api import export_response
from apps.snapshots.forms import ModelUploadForm, SnapshotForm
from apps.teams.access import TeamAccess, access_application
from apps.teams.views.application_tabs import application_context
from apps.teams.views.base import team_context, team_page

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
        models=selectors.snapshot_model_list(snapshot=snapshot),
    )
    return render(request, "snapshots/detail.html", context)


@team_page("flow:read")
@require_http_methods(["GET"])
def snapshot_export(
    request: HttpRequest, access: TeamAccess, app_slug: str, snapshot_id: int
) -> HttpResponse:
    access_application(access, app_slug, "flow:read")
    return export_response(access_snapshot(access, snapshot_id, "flow:read"))


@team_page("model:read")
@require_http_methods(["GET", "POST"])
def model_list(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    can_manage = access.allows("model:manage")
    form = ModelUploadForm()
    if request.method == "POST":
        access.require("model:manage")
        form = ModelUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                artifact, created = artifacts.model_upload(
                    principal=access.principal,
                    team=access.team,
                    name=form.cleaned_data["name"],
                    chunks=form.cleaned_data["file"].chunks(),
                )
            except ManifoldError as exc:
                add_service_error(form, exc)
            else:
                if created:
                    messages.success(request, f"Model “{artifact.name}” uploaded.")
                else:
                    messages.info(
                        request, f"This file is already a model of the team: “{artifact.name}”."
                    )
                return redirect("snapshots:models", team_slug=access.team.slug)
    page = Paginator(selectors.model_list(team=access.team), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "snapshots/models.html",
        team_context(access, "models", page=page, form=form, can_manage=can_manage),
        status=400 if form.errors else 200,
    )


@team_page("model:manage")
@require_http_methods(["POST"])
def model_delete(request: HttpRequest, access: TeamAccess, model_id: int) -> HttpResponse:
    artifact = access_model(access, model_id, "model:manage")
    try:
        artifacts.model_delete(principal=access.principal, artifact=artifact)
    except ManifoldError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Model “{artifact.name}” deleted.")
    return redirect("snapshots:models", team_slug=access.team.slug)
