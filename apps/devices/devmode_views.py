"""The device page's developer mode: enter, the live panel (the device's flows by tab, inject
buttons, the engine's state, a JSON editor that deploys to the device) and leave (keep as a
snapshot or revert to the target). Every write is a ``services.devmode`` service.

The panel reads the device over its link, so the device page loads it afterwards (htmx,
``hx-trigger="load"``) instead of waiting for the device before it answers. htmx requests get
the panel back (errors inline, status 200 so htmx swaps it in); plain form posts redirect to the
device page, or show it with the errors (400/409).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.core.errors import ManifoldError
from apps.core.forms import add_service_error
from apps.devices.access import access_device
from apps.devices.forms import DeveloperFlowsForm, DeveloperLeaveForm
from apps.devices.models import Device
from apps.devices.services.devmode import (
    DEVELOP_PERMISSION,
    device_dev_deploy,
    device_dev_flows,
    device_dev_inject,
    device_dev_state,
    device_developer_mode_enter,
    device_developer_mode_leave,
)
from apps.devices.views import device_page_context
from apps.teams.access import TeamAccess
from apps.teams.views.base import team_page


def _device_url(access: TeamAccess, device: Device) -> str:
    url = reverse(
        "devices:device_detail", kwargs={"team_slug": access.team.slug, "device_id": device.pk}
    )
    return url + "#developer-title"


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _tabs(flows: list[Any]) -> list[dict[str, Any]]:
    """The flows as the panel lists them: each tab (and subflow) with its nodes, then the
    configuration nodes (those on no tab)."""
    groups: dict[str, dict[str, Any]] = {}
    for node in flows:
        if isinstance(node, dict) and node.get("type") in ("tab", "subflow"):
            label = node.get("label") or node.get("name") or node.get("id")
            groups[str(node.get("id"))] = {
                "id": node.get("id"),
                "label": label,
                "disabled": bool(node.get("disabled")),
                "nodes": [],
            }
    config: dict[str, Any] = {"id": "", "label": "Configuration nodes", "nodes": []}
    for node in flows:
        if not isinstance(node, dict) or node.get("type") in ("tab", "subflow"):
            continue
        row = {
            "id": str(node.get("id", "")),
            "type": str(node.get("type", "")),
            "name": str(node.get("name") or ""),
            "injectable": node.get("type") == "inject" and not node.get("d"),
        }
        groups.get(str(node.get("z")), config)["nodes"].append(row)
    return [*groups.values(), *([config] if config["nodes"] else [])]


def _panel_context(
    access: TeamAccess, device: Device, form: DeveloperFlowsForm | None = None
) -> dict[str, Any]:
    """What the panel shows: read from the device unless it is not in developer mode."""
    context: dict[str, Any] = {"team": access.team, "device": device, "panel_error": None}
    if not device.developer_mode:
        return context
    try:
        flows = device_dev_flows(principal=access.principal, device=device)
        state = device_dev_state(principal=access.principal, device=device)
    except ManifoldError as exc:
        context["panel_error"] = exc.message
        context["flows_form"] = form
        return context
    context["tabs"] = _tabs(flows["flows"])
    context["state"] = state
    context["rev"] = flows.get("rev")
    context["flows_form"] = form or DeveloperFlowsForm(
        initial={"flows_text": json.dumps(flows["flows"], indent=2, ensure_ascii=False)}
    )
    return context


def _page_with_errors(
    request: HttpRequest, access: TeamAccess, device: Device, status: int, **extra: Any
) -> HttpResponse:
    device.refresh_from_db()
    context = device_page_context(request, access, device, **extra)
    return render(request, "devices/device.html", context, status=status)


@team_page(DEVELOP_PERMISSION)
@require_http_methods(["GET"])
def device_developer(request: HttpRequest, access: TeamAccess, device_id: int) -> HttpResponse:
    """The live panel (htmx partial)."""
    device = access_device(access, device_id, DEVELOP_PERMISSION)
    return render(request, "devices/_developer_panel.html", _panel_context(access, device))


@team_page(DEVELOP_PERMISSION)
@require_http_methods(["POST"])
def device_developer_enter(
    request: HttpRequest, access: TeamAccess, device_id: int
) -> HttpResponse:
    device = access_device(access, device_id, DEVELOP_PERMISSION)
    try:
        device_developer_mode_enter(principal=access.principal, device=device)
    except ManifoldError as exc:
        return _page_with_errors(request, access, device, exc.status_code, developer_error=exc)
    messages.success(request, f"“{device.name}” is in developer mode: target deploys are paused.")
    return redirect(_device_url(access, device))


@team_page(DEVELOP_PERMISSION)
@require_http_methods(["POST"])
def device_developer_leave(
    request: HttpRequest, access: TeamAccess, device_id: int
) -> HttpResponse:
    device = access_device(access, device_id, DEVELOP_PERMISSION)
    form = DeveloperLeaveForm(request.POST)
    if not form.is_valid():
        return _page_with_errors(request, access, device, 400, leave_form=form)
    keep = form.cleaned_data["keep"]
    try:
        left = device_developer_mode_leave(
            principal=access.principal, device=device, keep=keep, name=form.cleaned_data["name"]
        )
    except ManifoldError as exc:
        add_service_error(form, exc)
        return _page_with_errors(request, access, device, exc.status_code, leave_form=form)
    if keep:
        done = "The changes are kept as a new snapshot, now the device's target."
    elif left.target is not None:
        done = "Reverted: the device gets its target again."
    else:
        done = "Developer mode left; the device had no target to revert to."
    messages.success(request, done)
    return redirect(_device_url(access, device))


@team_page(DEVELOP_PERMISSION)
@require_http_methods(["POST"])
def device_developer_deploy(
    request: HttpRequest, access: TeamAccess, device_id: int
) -> HttpResponse:
    """Deploy the editor's flows to the device (validated by the platform's validator)."""
    device = access_device(access, device_id, DEVELOP_PERMISSION)
    form = DeveloperFlowsForm(request.POST)
    deployed = None
    if form.is_valid():
        try:
            deployed = device_dev_deploy(
                principal=access.principal, device=device, flows=form.cleaned_data["flows_text"]
            )
        except ManifoldError as exc:
            add_service_error(form, exc, {"flows": "flows_text"})
    if deployed is not None:
        failures = len(deployed.get("failures") or [])
        messages.success(
            request,
            "Deployed to the device."
            + (f" {failures} node(s) failed to start (see the live sidebar)." if failures else ""),
        )
        return redirect(_device_url(access, device))
    context = _panel_context(access, device, form)
    return _page_with_errors(request, access, device, 400, developer_panel=context)


@team_page(DEVELOP_PERMISSION)
@require_http_methods(["POST"])
def device_developer_inject(
    request: HttpRequest, access: TeamAccess, device_id: int, node_id: str
) -> HttpResponse:
    """Press an inject node's button; answers one line for the panel's notice area."""
    device = access_device(access, device_id, DEVELOP_PERMISSION)
    error = None
    try:
        device_dev_inject(principal=access.principal, device=device, node_id=node_id)
    except ManifoldError as exc:
        error = exc
    if not _is_htmx(request):
        if error is not None:
            return _page_with_errors(
                request, access, device, error.status_code, developer_error=error
            )
        messages.success(request, f"Injected node {node_id}.")
        return redirect(_device_url(access, device))
    context = {"node_id": node_id, "error": error.message if error is not None else None}
    return render(request, "devices/_developer_notice.html", context)
