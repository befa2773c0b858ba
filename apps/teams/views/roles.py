"""Roles: the built-in role table and the team's custom roles (named permission sets)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.core.errors import ManifoldError
from apps.core.forms import add_service_error
from apps.rbac import services as rbac_services
from apps.rbac.access import access_custom_role
from apps.rbac.models import CustomRole
from apps.rbac.permissions import CUSTOM_ROLE_KEYS, PERMISSIONS, ROLES, role_allows
from apps.rbac.selectors import custom_role_list
from apps.teams.access import TeamAccess
from apps.teams.forms import CustomRoleForm
from apps.teams.views.base import team_context, team_page


def permission_choices() -> list[tuple[str, str]]:
    """Keys a custom role may hold, in table order, labelled for people."""
    return [
        (key, f"{spec.description} ({key})")
        for key, spec in PERMISSIONS.items()
        if key in CUSTOM_ROLE_KEYS
    ]


GROUP_LABELS = {
    "team": "Team",
    "member": "Members",
    "customrole": "Roles",
    "application": "Applications",
    "audit": "Audit log",
    "token": "Personal",
    "invitation": "Personal",
    "dashboard": "Dashboards",
    "flow": "Flows",
    "snapshot": "Snapshots",
    "pipeline": "Pipelines",
    "device": "Devices",
    "model": "AI models",
    "sso": "Single sign-on",
}


def permission_groups(selected: object) -> list[dict[str, object]]:
    """The custom-role checkboxes grouped by area, so a long list stays scannable."""
    chosen = {str(key) for key in selected} if isinstance(selected, list | tuple) else set()
    groups: dict[str, list[dict[str, object]]] = {}
    for key, spec in PERMISSIONS.items():
        if key not in CUSTOM_ROLE_KEYS:
            continue
        label = GROUP_LABELS.get(key.split(":", 1)[0], "Other")
        groups.setdefault(label, []).append(
            {"key": key, "description": spec.description, "checked": key in chosen}
        )
    return [{"label": label, "permissions": items} for label, items in groups.items()]


# Features whose pages do not exist yet: the matrix names them in one line instead of rows that
# read as if they worked today. A later issue that ships one removes its prefix here.
NOT_YET_AVAILABLE = {
    "flow": "flows",
    "snapshot": "snapshots",
    "pipeline": "pipelines",
    "device": "devices",
    "sso": "single sign-on",
    "model": "models",
    "dashboard": "dashboards",
}


def role_matrix() -> list[dict[str, object]]:
    """One row per permission key of a feature that exists: which built-in roles grant it."""
    return [
        {
            "key": key,
            "description": spec.description,
            "grants": [role_allows(role, key) for role in ROLES],
        }
        for key, spec in PERMISSIONS.items()
        if key.split(":")[0] not in NOT_YET_AVAILABLE
    ]


def coming_features() -> str:
    """The features still to come, as one readable list."""
    names = sorted(set(NOT_YET_AVAILABLE.values()))
    return ", ".join(names[:-1]) + " and " + names[-1]


@team_page("customrole:read")
@require_http_methods(["GET"])
def role_list(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    return render(
        request,
        "teams/roles.html",
        team_context(
            access,
            "roles",
            custom_roles=custom_role_list(team=access.team),
            roles=ROLES,
            matrix=role_matrix(),
            coming_features=coming_features(),
        ),
    )


def _role_form(
    request: HttpRequest, access: TeamAccess, form: CustomRoleForm, role: CustomRole | None
) -> HttpResponse:
    """The create/edit page of a custom role; 400 while the form has errors."""
    return render(
        request,
        "teams/role_form.html",
        team_context(
            access,
            "roles",
            form=form,
            role=role,
            permission_groups=permission_groups(form["permissions"].value()),
        ),
        status=400 if form.errors else 200,
    )


@team_page("customrole:manage")
@require_http_methods(["GET", "POST"])
def role_create(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    form = CustomRoleForm(request.POST or None, permission_choices=permission_choices())
    if request.method == "POST" and form.is_valid():
        try:
            role = rbac_services.custom_role_create(
                principal=access.principal,
                team=access.team,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                permissions=list(form.cleaned_data["permissions"]),
            )
        except ManifoldError as exc:
            add_service_error(form, exc)
        else:
            messages.success(
                request, f"Custom role “{role.name}” created. Assign it on the Members page."
            )
            return redirect("teams:roles", team_slug=access.team.slug)
    return _role_form(request, access, form, None)


@team_page("customrole:manage")
@require_http_methods(["GET", "POST"])
def role_edit(request: HttpRequest, access: TeamAccess, role_id: int) -> HttpResponse:
    role: CustomRole = access_custom_role(access, role_id, "customrole:manage")
    form = CustomRoleForm(
        request.POST or None,
        permission_choices=permission_choices(),
        initial={
            "name": role.name,
            "description": role.description,
            "permissions": list(role.permissions),
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            rbac_services.custom_role_update(
                principal=access.principal,
                role=role,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                permissions=list(form.cleaned_data["permissions"]),
            )
        except ManifoldError as exc:
            role.refresh_from_db()
            add_service_error(form, exc)
        else:
            messages.success(request, f"Custom role “{role.name}” saved.")
            return redirect("teams:roles", team_slug=access.team.slug)
    return _role_form(request, access, form, role)


@team_page("customrole:manage")
@require_http_methods(["GET", "POST"])
def role_delete(request: HttpRequest, access: TeamAccess, role_id: int) -> HttpResponse:
    role = access_custom_role(access, role_id, "customrole:manage")
    error = None
    if request.method == "POST":
        try:
            rbac_services.custom_role_delete(
                principal=access.principal,
                role=role,
            )
        except ManifoldError as exc:
            error = exc.message
        else:
            messages.success(request, f"Custom role “{role.name}” deleted.")
            return redirect("teams:roles", team_slug=access.team.slug)
    return render(
        request,
        "teams/role_delete.html",
        team_context(access, "roles", role=role, error=error),
        status=409 if error else 200,
    )
