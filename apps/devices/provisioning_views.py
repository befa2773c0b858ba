"""Adding devices: the add-device page (a provisioning token, or a pre-created device with a
registration code), the team's provisioning tokens with revoke, and a new code for a device
still waiting for registration. Each secret is shown once, on the answer to the POST that
made it (``Cache-Control: no-store``); every other write redirects."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from apps.core.errors import ManifoldError, NotFound
from apps.core.forms import add_service_error
from apps.devices import selectors, services
from apps.devices.access import access_device, access_device_group, access_provisioning_token
from apps.devices.forms import ProvisioningTokenForm, RegistrationCodeForm
from apps.devices.views import application_or_none, device_context, member_applications
from apps.teams.access import TeamAccess
from apps.teams.views.base import team_context, team_page

DATA_DIR = "/var/lib/manifold-edge"


def _platform_url(request: HttpRequest) -> str:
    base = str(getattr(settings, "MANIFOLD_BASE_URL", "") or "").rstrip("/")
    return base or request.build_absolute_uri("/").rstrip("/")


def _commands(request: HttpRequest, secret: str) -> dict[str, str]:
    """The two commands to run on the device, with a token or a registration code."""
    url = _platform_url(request)
    return {
        "register": f"edge-runner register --url {url} --token {secret} --data-dir {DATA_DIR}",
        "run": f"edge-runner run --data-dir {DATA_DIR}",
    }


def _create_token(
    request: HttpRequest, access: TeamAccess, form: ProvisioningTokenForm
) -> dict[str, Any] | None:
    data = form.cleaned_data
    try:
        application = application_or_none(access, data["application"], "device:manage")
    except NotFound:
        form.add_error("application", "Choose one of your applications.")
        return None
    try:
        group = (
            access_device_group(access, data["group"], "device:manage") if data["group"] else None
        )
    except NotFound:
        form.add_error("group", "Choose one of the team's device groups.")
        return None
    expires_at = None
    if data["expires_in_days"]:
        expires_at = timezone.now() + dt.timedelta(days=data["expires_in_days"])
    try:
        token, raw = services.provisioning_token_create(
            principal=access.principal,
            team=access.team,
            name=data["name"],
            application=application,
            group=group,
            max_uses=data["max_uses"],
            expires_at=expires_at,
        )
    except ManifoldError as exc:
        add_service_error(form, exc)
        return None
    return {"token": token, **_commands(request, raw)}


def _create_code(
    request: HttpRequest, access: TeamAccess, form: RegistrationCodeForm
) -> dict[str, Any] | None:
    data = form.cleaned_data
    try:
        application = application_or_none(access, data["code_application"], "device:manage")
        groups = [access_device_group(access, pk, "device:manage") for pk in data["code_groups"]]
        device, raw = services.registration_code_create(
            principal=access.principal,
            team=access.team,
            name=data["code_name"],
            application=application,
            groups=groups,
        )
    except NotFound:
        form.add_error("code_application", "Choose one of your applications.")
        return None
    except ManifoldError as exc:
        add_service_error(
            form,
            exc,
            {"name": "code_name", "application": "code_application", "groups": "code_groups"},
        )
        return None
    return {"device": device, "code": raw, **_commands(request, raw)}


@team_page("device:manage")
@require_http_methods(["GET", "POST"])
def device_add(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    """Create a provisioning token, or a pre-created device with a registration code, and show
    the secret once with the two commands to run on the device."""
    applications = [
        app for app in member_applications(access) if access.allows("device:manage", app)
    ]
    groups = list(selectors.device_group_list(access))
    initial = {"application": request.GET.get("application", "")}
    kind = request.POST.get("kind", "token") if request.method == "POST" else ""
    form = ProvisioningTokenForm(
        request.POST if kind == "token" else None,
        applications=applications,
        groups=groups,
        initial=initial,
    )
    code_form = RegistrationCodeForm(
        request.POST if kind == "code" else None,
        applications=applications,
        groups=groups,
        initial={"code_application": initial["application"]},
    )
    created = issued = None
    if kind == "token" and form.is_valid():
        created = _create_token(request, access, form)
        if created is not None:
            form = ProvisioningTokenForm(applications=applications, groups=groups, initial=initial)
    elif kind == "code" and code_form.is_valid():
        issued = _create_code(request, access, code_form)
        if issued is not None:
            code_form = RegistrationCodeForm(applications=applications, groups=groups)
    response = render(
        request,
        "devices/add.html",
        team_context(
            access,
            "devices",
            form=form,
            code_form=code_form,
            created=created,
            issued=issued,
        ),
        status=400 if form.errors or code_form.errors else 200,
    )
    response["Cache-Control"] = "no-store"  # the raw token or code is on this page once
    return response


@team_page("device:read")
@require_http_methods(["GET"])
def token_list(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    tokens = list(selectors.provisioning_token_list(access))
    return render(
        request,
        "devices/tokens.html",
        team_context(
            access,
            "devices",
            tokens=tokens,
            now=timezone.now(),
            can_manage=access.allows("device:manage"),
        ),
    )


@team_page("device:manage")
@require_http_methods(["POST"])
def token_revoke(request: HttpRequest, access: TeamAccess, token_id: int) -> HttpResponse:
    token = access_provisioning_token(access, token_id, "device:manage")
    try:
        services.provisioning_token_revoke(principal=access.principal, token=token)
    except ManifoldError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Token “{token.name}” revoked. Devices it registered stay.")
    return redirect("devices:device_tokens", team_slug=access.team.slug)


@team_page("device:manage")
@require_http_methods(["POST"])
def device_registration_code(
    request: HttpRequest, access: TeamAccess, device_id: int
) -> HttpResponse:
    """A new registration code for a device waiting for registration (the old one stops
    working), shown once on the device's page."""
    device = access_device(access, device_id, "device:manage")
    try:
        device, raw = services.registration_code_reissue(principal=access.principal, device=device)
    except ManifoldError as exc:
        context = device_context(request, access, device, action_error=exc.message)
        return render(request, "devices/device.html", context, status=400)
    device = access_device(access, device.pk, "device:manage")
    new_code = {"code": raw, **_commands(request, raw)}
    response = render(
        request, "devices/device.html", device_context(request, access, device, new_code=new_code)
    )
    response["Cache-Control"] = "no-store"  # the code is on this page once
    return response
