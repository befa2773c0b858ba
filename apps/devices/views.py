"""Fleet pages: the team's device list (and the application's Devices tab), adding a device,
provisioning tokens, and one device's page. Every write is a fleet service; its refusal is shown
next to the form that asked."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from apps.core.errors import ManifoldError, NotFound
from apps.core.forms import add_service_error
from apps.devices import selectors, services
from apps.devices.access import access_device
from apps.devices.forms import (
    BULK_ACTIONS,
    DESTRUCTIVE,
    BulkForm,
    DecommissionForm,
    DeployForm,
    DeveloperLeaveForm,
    DeviceSettingsForm,
    FleetFilterForm,
    StateAtForm,
)
from apps.devices.models import Device
from apps.devices.services.link import device_history, device_state_at
from apps.devices.services.targets import device_set_target, env_waiting, target_env
from apps.snapshots.access import access_snapshot
from apps.snapshots.selectors import snapshot_list
from apps.teams import selectors as team_selectors
from apps.teams.access import TeamAccess, access_application
from apps.teams.models import Application
from apps.teams.views.application_tabs import application_context
from apps.teams.views.base import team_context, team_page

SPARK_POINTS = 40
HISTORY_ROWS = 20
SNAPSHOT_CHOICES = 50


def member_applications(access: TeamAccess) -> list[Application]:
    return list(team_selectors.application_list(team=access.team, membership=access.membership))


def application_or_none(access: TeamAccess, slug: str, permission: str) -> Application | None:
    return access_application(access, slug, permission) if slug else None


def _fleet_context(
    request: HttpRequest, access: TeamAccess, application: Application | None
) -> dict[str, Any]:
    """The filter form, the filtered devices and the bulk form of the fleet table."""
    applications = member_applications(access)
    groups = list(selectors.device_group_list(access))
    filters = FleetFilterForm(request.GET or None, applications=applications, groups=groups)
    chosen: dict[str, Any] = {}
    if filters.is_valid():
        data = filters.cleaned_data
        chosen = {"status": data["status"], "tag": data["tag"], "text": data["q"]}
        if application is None and data["application"]:
            try:
                chosen["application"] = access_application(
                    access, data["application"], "device:read"
                )
            except NotFound:
                filters.add_error("application", "Choose one of your applications.")
        if data["group"]:
            chosen["group"] = selectors.device_group_get(access, int(data["group"]))
    if application is not None:
        chosen["application"] = application
    devices = list(selectors.devices_for(access, **chosen))
    # The empty state tells "no devices" from "none matching" (the tab's own application is
    # no filter).
    filtered = any(value for key, value in chosen.items() if key != "application") or (
        application is None and "application" in chosen
    )
    return {
        "filters": filters,
        "devices": devices,
        "filtered": filtered,
        "applications": applications,
        "can_manage": access.allows("device:manage", application),
        "bulk_actions": BULK_ACTIONS,
    }


def _bulk(request: HttpRequest, access: TeamAccess, context: dict[str, Any]) -> HttpResponse | None:
    """Apply one bulk action; None when done (the caller redirects), else the page to show."""
    access.require("device:manage")
    visible = list(selectors.devices_for(access))
    form = BulkForm(request.POST, devices=visible, applications=context["applications"])
    context["bulk"] = form
    if not form.is_valid():
        return _render_fleet(request, context, status=400)
    data = form.cleaned_data
    devices = [access_device(access, pk, "device:manage") for pk in data["devices"]]
    action = data["action"]
    if action in DESTRUCTIVE and not data["confirmed"]:
        context["confirm"] = {"action": action, "devices": devices}
        return _render_fleet(request, context)
    principal = access.principal
    try:
        if action == "move":
            target = application_or_none(access, data["application"], "device:manage")
            services.devices_update(principal=principal, devices=devices, application=target)
        elif action == "add_tag":
            services.devices_update(principal=principal, devices=devices, add_tags=[data["tag"]])
        elif action == "remove_tag":
            services.devices_update(principal=principal, devices=devices, remove_tags=[data["tag"]])
        elif action == "suspend":
            services.devices_suspend(principal=principal, devices=devices)
        elif action == "resume":
            services.devices_resume(principal=principal, devices=devices)
        else:
            services.devices_delete(principal=principal, devices=devices)
    except NotFound:
        form.add_error("application", "Choose one of your applications.")
        return _render_fleet(request, context, status=400)
    except ManifoldError as exc:
        add_service_error(form, exc)
        return _render_fleet(request, context, status=400)
    label = dict(BULK_ACTIONS)[action]
    count = len(devices)
    messages.success(request, f"{label}: done for {count} device{'s' if count != 1 else ''}.")
    return None


def _render_fleet(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    if request.htmx and request.htmx.target == "fleet-table":  # type: ignore[attr-defined]  # htmx middleware
        return render(request, "devices/_fleet_table.html", context, status=status)
    template = (
        "devices/application_devices.html" if context.get("application") else "devices/fleet.html"
    )
    return render(request, template, context, status=status)


@team_page("device:read")
@require_http_methods(["GET", "POST"])
def fleet(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    """The team's devices: filters, bulk actions, live status (device.state.changed)."""
    context = team_context(access, "devices", **_fleet_context(request, access, None))
    if request.method == "POST":
        response = _bulk(request, access, context)
        if response is not None:
            return response
        return redirect(request.get_full_path())
    return _render_fleet(request, context)


@team_page("device:read")
@require_http_methods(["GET", "POST"])
def application_devices(request: HttpRequest, access: TeamAccess, app_slug: str) -> HttpResponse:
    """The application's Devices tab: the same table, narrowed to the application."""
    application = access_application(access, app_slug, "device:read")
    context = application_context(
        access, application, "devices", **_fleet_context(request, access, application)
    )
    if request.method == "POST":
        response = _bulk(request, access, context)
        if response is not None:
            return response
        return redirect(request.get_full_path())
    return _render_fleet(request, context)


# --- one device --------------------------------------------------------------------------------


def _series(device: Device) -> dict[str, list[float | None]]:
    """The last heartbeats' figures, oldest first, for the sparklines."""
    beats = list(device.heartbeats.order_by("-at")[:SPARK_POINTS])[::-1]
    return {
        "cpu": [beat.cpu_percent for beat in beats],
        "memory": [beat.memory_bytes for beat in beats],
        "disk": [beat.disk_free_bytes for beat in beats],
    }


def env_waiting_note(devices: Iterable[Device]) -> str:
    """After an env edit: the devices in developer mode it skipped, said in one sentence
    (empty when none; the others got their target again with the new env)."""
    waiting = env_waiting(devices)
    if not waiting:
        return ""
    names = ", ".join(f"“{device.name}”" for device in waiting[:5])
    more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
    one = len(waiting) == 1
    return (
        f" {names}{more} {'is' if one else 'are'} in developer mode: the new env applies when "
        f"{'it leaves' if one else 'they leave'} developer mode."
    )


def _deployable(access: TeamAccess, application: Application) -> list[Any]:
    """The application's newest snapshots, offered in the deploy form."""
    return list(snapshot_list(team=access.team, application=application)[:SNAPSHOT_CHOICES])


def device_context(
    request: HttpRequest, access: TeamAccess, device: Device, **forms: Any
) -> dict[str, Any]:
    history = device_history(device, limit=HISTORY_ROWS)
    settings_form = forms.get("settings_form") or DeviceSettingsForm(
        initial={
            "name": device.name,
            "tags": ", ".join(device.tags),
            "env": "\n".join(f"{name}={value}" for name, value in sorted(device.env.items())),
        }
    )
    state_at = StateAtForm(request.GET if "when" in request.GET else None)
    answer = None
    if state_at.is_bound and state_at.is_valid():
        when = state_at.cleaned_data["when"]
        answer = {"when": when, "row": device_state_at(device, when)}
    resources = device.resources or {}
    target = device.target
    env_sources = selectors.device_env_sources(device, target.snapshot.env if target else None)
    env_shipped = target is None or target_env(target) == {
        entry.name: entry.value for entry in env_sources
    }
    deploy_form = forms.get("deploy_form")
    application = device.application
    can_deploy = application is not None and access.allows("flow:deploy", application)
    if application is not None and can_deploy and deploy_form is None:
        snapshots = _deployable(access, application)
        deploy_form = DeployForm(snapshots=snapshots) if snapshots else None
    return team_context(
        access,
        "devices",
        device=device,
        groups=list(device.groups.all()),
        history=history,
        series=_series(device),
        resources=resources,
        settings_form=settings_form,
        decommission_form=forms.get("decommission_form") or DecommissionForm(),
        state_at=state_at,
        state_answer=answer,
        action_error=forms.get("action_error"),
        deploy_form=deploy_form,
        can_deploy=can_deploy,
        env_sources=env_sources,
        env_shipped=env_shipped,
        waiting=device.registered_at is None
        and device.decommissioned_at is None
        and not device.hosted_driver,
        now=timezone.now(),
        new_code=forms.get("new_code"),
        can_manage=access.allows("device:manage", device.application),
        live_url=f"/ws/teams/{access.team.slug}/devices/{device.pk}/live/",
        can_develop=access.allows("device:develop", application),
        developer_error=forms.get("developer_error"),
        leave_form=forms.get("leave_form") or DeveloperLeaveForm(),
        developer_panel=forms.get("developer_panel"),
    )


def device_page_context(
    request: HttpRequest, access: TeamAccess, device: Device, **forms: Any
) -> dict[str, Any]:
    """The device page's context, with the given forms and errors (developer mode's views)."""
    return device_context(request, access, device, **forms)


@team_page("device:read")
@require_http_methods(["GET"])
def device_detail(request: HttpRequest, access: TeamAccess, device_id: int) -> HttpResponse:
    device = access_device(access, device_id, "device:read")
    context = device_context(request, access, device)
    if request.htmx and request.htmx.target == "device-body":  # type: ignore[attr-defined]  # htmx middleware
        return render(request, "devices/_device_body.html", context)
    status = 400 if context["state_at"].errors else 200
    return render(request, "devices/device.html", context, status=status)


def _device_url(access: TeamAccess, device: Device) -> str:
    return reverse(
        "devices:device_detail", kwargs={"team_slug": access.team.slug, "device_id": device.pk}
    )


@team_page("device:manage")
@require_http_methods(["POST"])
def device_settings(request: HttpRequest, access: TeamAccess, device_id: int) -> HttpResponse:
    device = access_device(access, device_id, "device:manage")
    form = DeviceSettingsForm(request.POST)
    if form.is_valid():
        try:
            saved = services.device_update(
                principal=access.principal,
                device=device,
                name=form.cleaned_data["name"],
                tags=form.cleaned_data["tags"],
                env=form.cleaned_data["env"],
            )
        except ManifoldError as exc:
            device.refresh_from_db()
            add_service_error(form, exc)
        else:
            messages.success(request, "Device settings saved." + env_waiting_note([saved]))
            return redirect(_device_url(access, device))
    context = device_context(request, access, device, settings_form=form)
    return render(request, "devices/device.html", context, status=400)


@team_page("flow:deploy")
@require_http_methods(["POST"])
def device_deploy(request: HttpRequest, access: TeamAccess, device_id: int) -> HttpResponse:
    """Make one of the application's snapshots the device's target."""
    device = access_device(access, device_id, "flow:deploy")
    if device.application is None:
        message = "Move the device into an application before deploying to it."
        context = device_context(request, access, device, action_error=message)
        return render(request, "devices/device.html", context, status=400)
    snapshots = _deployable(access, device.application)
    form = DeployForm(request.POST, snapshots=snapshots)
    if form.is_valid():
        try:
            snapshot = access_snapshot(access, form.cleaned_data["snapshot"], "flow:deploy")
            device_set_target(principal=access.principal, device=device, snapshot=snapshot)
        except NotFound:
            form.add_error("snapshot", "Choose a snapshot of this device's application.")
        except ManifoldError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"“{snapshot.name}” is the device's target now.")
            return redirect(_device_url(access, device))
    context = device_context(request, access, device, deploy_form=form)
    return render(request, "devices/device.html", context, status=400)


def _device_action(
    request: HttpRequest, access: TeamAccess, device_id: int, verb: str
) -> HttpResponse:
    device = access_device(access, device_id, "device:manage")
    principal = access.principal
    decommission = DecommissionForm(request.POST, device_name=device.name)
    try:
        if verb == "suspend":
            services.device_suspend(principal=principal, device=device)
        elif verb == "resume":
            services.device_resume(principal=principal, device=device)
        elif not decommission.is_valid():
            context = device_context(request, access, device, decommission_form=decommission)
            context["danger_action"] = verb
            return render(request, "devices/device.html", context, status=400)
        elif verb == "decommission":
            services.device_decommission(principal=principal, device=device)
        else:
            services.device_delete(principal=principal, device=device)
            messages.success(request, f"Device “{device.name}” deleted.")
            return redirect("devices:fleet", team_slug=access.team.slug)
    except ManifoldError as exc:
        device.refresh_from_db()
        context = device_context(request, access, device, action_error=exc.message)
        return render(request, "devices/device.html", context, status=400)
    done = {"suspend": "suspended", "resume": "resumed", "decommission": "decommissioned"}[verb]
    messages.success(request, f"Device “{device.name}” {done}.")
    return redirect(_device_url(access, device))


@team_page("device:manage")
@require_http_methods(["POST"])
def device_suspend(request: HttpRequest, access: TeamAccess, device_id: int) -> HttpResponse:
    return _device_action(request, access, device_id, "suspend")


@team_page("device:manage")
@require_http_methods(["POST"])
def device_resume(request: HttpRequest, access: TeamAccess, device_id: int) -> HttpResponse:
    return _device_action(request, access, device_id, "resume")


@team_page("device:manage")
@require_http_methods(["POST"])
def device_decommission(request: HttpRequest, access: TeamAccess, device_id: int) -> HttpResponse:
    return _device_action(request, access, device_id, "decommission")


@team_page("device:manage")
@require_http_methods(["POST"])
def device_delete(request: HttpRequest, access: TeamAccess, device_id: int) -> HttpResponse:
    return _device_action(request, access, device_id, "delete")
