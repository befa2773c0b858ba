"""Device group pages: the team's groups, creating and editing one (name, description, env vars),
deleting it after a confirmation, and one group's page with its devices (add, remove).

Every write is a fleet service (``device_group_create/update/delete``, and ``device_update``
for membership through ``device_group_add_devices/remove_devices``); a refusal is shown next
to the form that asked, a success redirects.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.core.errors import ManifoldError, ValidationError
from apps.core.forms import add_service_error
from apps.devices import selectors, services
from apps.devices.access import access_device, access_device_group
from apps.devices.forms import DeviceGroupForm, GroupDevicesForm
from apps.devices.models import DeviceGroup
from apps.devices.views import env_waiting_note
from apps.teams.access import TeamAccess
from apps.teams.views.base import team_context, team_page


def _group_url(access: TeamAccess, group: DeviceGroup) -> str:
    return reverse(
        "devices:device_group", kwargs={"team_slug": access.team.slug, "group_id": group.pk}
    )


def _show_refusal(form: DeviceGroupForm, exc: ManifoldError) -> None:
    """The service's own sentence for env vars (it names the variable), else field by field."""
    if isinstance(exc, ValidationError) and "env" in exc.fields:
        form.add_error("env", exc.message)
    else:
        add_service_error(form, exc)


@team_page("device:read")
@require_http_methods(["GET"])
def group_list(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    """The team's device groups with their device and env var counts."""
    groups = list(selectors.device_groups_with_counts(access))
    return render(
        request,
        "devices/groups.html",
        team_context(access, "devices", groups=groups, can_manage=access.allows("device:manage")),
    )


def _group_form(
    request: HttpRequest, access: TeamAccess, group: DeviceGroup | None
) -> HttpResponse:
    """Create (``group`` None) or edit a group; on success, to the group's page."""
    initial = {"name": group.name, "description": group.description} if group else None
    form = DeviceGroupForm(request.POST or None, initial=initial, env=group.env if group else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        fields = {"name": data["name"], "description": data["description"], "env": data["env"]}
        try:
            if group is None:
                saved = services.device_group_create(
                    principal=access.principal, team=access.team, **fields
                )
            else:
                saved = services.device_group_update(
                    principal=access.principal, group=group, **fields
                )
        except ManifoldError as exc:
            _show_refusal(form, exc)
        else:
            done = "created" if group is None else "saved"
            note = env_waiting_note(selectors.devices_for(access, group=saved)) if group else ""
            messages.success(request, f"Device group “{saved.name}” {done}.{note}")
            return redirect(_group_url(access, saved))
    return render(
        request,
        "devices/group_form.html",
        team_context(access, "devices", form=form, group=group),
        status=400 if form.errors else 200,
    )


@team_page("device:manage")
@require_http_methods(["GET", "POST"])
def group_create(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    return _group_form(request, access, None)


@team_page("device:manage")
@require_http_methods(["GET", "POST"])
def group_edit(request: HttpRequest, access: TeamAccess, group_id: int) -> HttpResponse:
    return _group_form(request, access, access_device_group(access, group_id, "device:manage"))


@team_page("device:manage")
@require_http_methods(["GET", "POST"])
def group_delete(request: HttpRequest, access: TeamAccess, group_id: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes (the devices stay, without the group's env)."""
    group = access_device_group(access, group_id, "device:manage")
    if request.method == "POST":
        members = list(selectors.devices_for(access, group=group).select_related("target"))
        services.device_group_delete(principal=access.principal, group=group)
        note = env_waiting_note(members)
        messages.success(request, f"Device group “{group.name}” deleted. Its devices stay.{note}")
        return redirect("devices:device_groups", team_slug=access.team.slug)
    devices = list(selectors.devices_for(access, group=group))
    return render(
        request,
        "devices/group_delete.html",
        team_context(access, "devices", group=group, devices=devices),
    )


def _group_context(
    access: TeamAccess, group: DeviceGroup, add_form: GroupDevicesForm | None = None
) -> dict[str, Any]:
    members = list(selectors.devices_for(access, group=group))
    can_manage = access.allows("device:manage")
    candidates = [
        device
        for device in selectors.devices_for(access, permission="device:manage")
        if device.pk not in {member.pk for member in members} and not device.decommissioned_at
    ]
    return team_context(
        access,
        "devices",
        group=group,
        env=sorted(group.env.items()),
        members=members,
        candidates=candidates if can_manage else [],
        add_form=add_form or GroupDevicesForm(devices=candidates),
        can_manage=can_manage,
    )


@team_page("device:read")
@require_http_methods(["GET"])
def group_detail(request: HttpRequest, access: TeamAccess, group_id: int) -> HttpResponse:
    group = access_device_group(access, group_id, "device:read")
    return render(request, "devices/group.html", _group_context(access, group))


def _membership(
    request: HttpRequest, access: TeamAccess, group_id: int, *, add: bool
) -> HttpResponse:
    group = access_device_group(access, group_id, "device:manage")
    context = _group_context(access, group)
    offered = context["candidates"] if add else context["members"]
    form = GroupDevicesForm(request.POST, devices=offered)
    if form.is_valid():
        devices = [
            access_device(access, pk, "device:manage") for pk in form.cleaned_data["devices"]
        ]
        change = services.device_group_add_devices if add else services.device_group_remove_devices
        try:
            change(principal=access.principal, group=group, devices=devices)
        except ManifoldError as exc:
            add_service_error(form, exc)
        else:
            count = len(devices)
            noun = f"{count} device{'s' if count != 1 else ''}"
            done = f"{noun} added to" if add else f"{noun} removed from"
            messages.success(request, f"{done} “{group.name}”.{env_waiting_note(devices)}")
            return redirect(_group_url(access, group))
    if add:
        context["add_form"] = form
    else:
        context["remove_errors"] = [error for errors in form.errors.values() for error in errors]
    return render(request, "devices/group.html", context, status=400)


@team_page("device:manage")
@require_http_methods(["POST"])
def group_add_devices(request: HttpRequest, access: TeamAccess, group_id: int) -> HttpResponse:
    return _membership(request, access, group_id, add=True)


@team_page("device:manage")
@require_http_methods(["POST"])
def group_remove_devices(request: HttpRequest, access: TeamAccess, group_id: int) -> HttpResponse:
    return _membership(request, access, group_id, add=False)
