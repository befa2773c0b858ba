"""The one route table of the test suite: every URL pattern, by URL name, with its sample.

Adding a URL pattern costs one row in ``ROUTES``: how to call it (kwargs pointing at team acme's
objects), who may (``scope``, ``actor``) and, for each mutating method, the rightful actor's valid
body. From that one row the isolation enumerator (RELIABILITY families 1, 2, 31), the RBAC matrix
(family 4, with tokens and anonymous callers) and the list-pagination checks all derive their
calls. A pattern without a row fails ``test_every_route_has_a_row`` with the row to add.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps as django_apps
from django.contrib.auth.tokens import default_token_generator
from django.db import models, transaction
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from apps.accounts.models import PersonalAccessToken, User
from apps.accounts.principal import Principal
from apps.accounts.services import (
    installation_settings_update,
    token_create,
    user_create,
    user_deactivate,
)
from apps.audit.models import AuditChainHead, AuditEvent
from apps.devices.models import Device, DeviceGroup, HostedInstance, ProvisioningToken
from apps.devices.services import (
    device_group_add_devices,
    device_group_create,
    device_register,
    device_suspend,
    provisioning_token_create,
    registration_code_create,
)
from apps.devices.services.devmode import (
    device_developer_mode_enter,
    device_developer_mode_leave,
)
from apps.devices.services.hosting import (
    hosted_instance_create,
    hosted_instance_delete,
    hosted_instance_start,
    hosted_instance_stop,
)
from apps.rbac.models import CustomRole
from apps.rbac.services import custom_role_create
from apps.snapshots.artifacts import model_upload
from apps.snapshots.models import Snapshot
from apps.snapshots.services import snapshot_create
from apps.teams.models import Invitation, Membership, Team
from apps.teams.services import application_override_set, invitation_create
from tests.conftest import PASSWORD, Acme, Globex

METHODS = ("get", "post", "put", "patch", "delete")
MUTATING = ("post", "put", "patch", "delete")
NEW_PASSWORD = "a-Different-passphrase-77"


# --- the world every probe runs against ---------------------------------------------------


@dataclass
class Fleet:
    """acme's devices: ``device`` (line-1, registered), ``paused`` (no application, suspended),
    a group and a provisioning token (raw secret kept to register with); globex's too."""

    device: Device
    paused: Device
    group: DeviceGroup
    token: ProvisioningToken
    token_raw: str
    globex_device: Device
    globex_group: DeviceGroup
    developing: Device  # line-1, registered, in developer mode (offline)


SEALING_KEY_B64 = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE="  # 32 bytes


def build_fleet(acme: Acme, globex: Globex) -> Fleet:
    olivia, oscar = Principal.for_user(acme.olivia), Principal.for_user(globex.oscar)
    group = device_group_create(principal=olivia, team=acme.team, name="Presses")
    token, raw = provisioning_token_create(
        principal=olivia, team=acme.team, name="Line 1 token", application=acme.line_1
    )
    device, _ = device_register(token=raw, name="Motor 3", sealing_key_b64=SEALING_KEY_B64)
    _, loose_raw = provisioning_token_create(principal=olivia, team=acme.team, name="Loose")
    paused, _ = device_register(token=loose_raw, name="Spare", sealing_key_b64=SEALING_KEY_B64)
    paused = device_suspend(principal=olivia, device=paused)
    _, globex_raw = provisioning_token_create(
        principal=oscar, team=globex.team, name="HQ token", application=globex.hq
    )
    globex_device, _ = device_register(
        token=globex_raw, name="Globex press", sealing_key_b64=SEALING_KEY_B64
    )
    globex_group = device_group_create(principal=oscar, team=globex.team, name="Globex ovens")
    press, _ = device_register(token=raw, name="Press 9", sealing_key_b64=SEALING_KEY_B64)
    developing = device_developer_mode_enter(principal=olivia, device=press)
    return Fleet(device, paused, group, token, raw, globex_device, globex_group, developing)


@dataclass
class World:
    acme: Acme
    globex: Globex
    newbie: User
    invitation: Invitation
    invitation_secret: str
    role: CustomRole
    globex_role: CustomRole
    eddie_membership: Membership
    vera_membership: Membership
    oscar_membership: Membership
    token: PersonalAccessToken
    event: AuditEvent
    reset_uid: str
    reset_token: str
    paula: User
    dormant: User
    fleet: Fleet
    snapshot: Snapshot
    globex_snapshot: Snapshot
    hosted: HostedInstance


def build_world(acme: Acme, globex: Globex) -> World:
    olivia, oscar = acme.olivia, globex.oscar
    newbie = user_create(email="newbie@acme.test", password=PASSWORD)
    created = invitation_create(
        principal=Principal.for_user(olivia), team=acme.team, email=newbie.email, role="viewer"
    )
    role = custom_role_create(
        principal=Principal.for_user(olivia), team=acme.team, name="Ops", permissions=["flow:read"]
    )
    globex_role = custom_role_create(
        principal=Principal.for_user(oscar),
        team=globex.team,
        name="Globex ops",
        permissions=["flow:read"],
    )
    eddie_membership = Membership.objects.get(team=acme.team, user=acme.eddie)
    vera_membership = Membership.objects.get(team=acme.team, user=acme.vera)
    # An override equal to vera's team role: it exists (to be listed and deleted) without
    # changing what any persona may do, so the RBAC matrix reads the plain role table.
    application_override_set(
        principal=Principal.for_user(olivia),
        membership=vera_membership,
        application=acme.line_1,
        role="viewer",
    )
    token = token_create(principal=Principal.for_user(olivia), name="olivia's token").token
    event = AuditEvent.objects.filter(team_key=acme.team.pk).order_by("-id").first()
    assert event is not None
    # The platform admin: a member of no team (tenancy is strict, the flag grants no team data).
    paula = user_create(email="paula@platform.test", password=PASSWORD, is_platform_admin=True)
    dormant = user_create(email="dormant@acme.test", password=PASSWORD)
    user_deactivate(principal=Principal.for_user(paula), user=dormant)
    snapshot = snapshot_create(
        principal=Principal.for_user(olivia),
        application=acme.line_1,
        name="v1",
        flows=[{"id": "t1", "type": "tab", "label": "Flow 1"}],
    )
    globex_snapshot = snapshot_create(
        principal=Principal.for_user(oscar),
        application=globex.hq,
        name="Globex v1",
        flows=[{"id": "g1", "type": "tab", "label": "Globex flow"}],
    )
    # Open sign-up on, so its page can be called like any other (closed, it only says so).
    installation_settings_update(principal=Principal.for_user(paula), open_signup=True)
    return World(
        acme=acme,
        globex=globex,
        newbie=newbie,
        invitation=created.invitation,
        invitation_secret=created.secret,
        role=role,
        globex_role=globex_role,
        eddie_membership=eddie_membership,
        vera_membership=vera_membership,
        oscar_membership=Membership.objects.get(team=globex.team, user=oscar),
        token=token,
        event=event,
        reset_uid=urlsafe_base64_encode(force_bytes(olivia.pk)),
        reset_token=default_token_generator.make_token(olivia),
        paula=paula,
        dormant=dormant,
        fleet=build_fleet(acme, globex),
        snapshot=snapshot,
        globex_snapshot=globex_snapshot,
        hosted=hosted_instance_create(
            principal=Principal.for_user(olivia), application=acme.line_1
        ).hosted,
    )


# --- the table ----------------------------------------------------------------------------

Body = Callable[[World], dict[str, Any]]


def _none(w: World) -> dict[str, Any]:
    return {}


def _team(w: World) -> dict[str, Any]:
    return {"team_slug": "acme"}


def _app(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "application_slug": "line-1"}


def _page_app(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "app_slug": "line-1"}


def _snapshot(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "snapshot_id": w.snapshot.pk}


def _model(w: World) -> dict[str, Any]:
    """A model of acme's store (uploaded when first needed; the same bytes answer the same row)."""
    from tests.apps.snapshots.conftest import tiny_model

    artifact, _ = model_upload(
        principal=Principal.for_user(w.acme.olivia),
        team=w.acme.team,
        name="motor",
        chunks=[tiny_model()],
    )
    return {"team_slug": "acme", "model_id": artifact.pk}


def _page_snapshot(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "app_slug": "line-1", "snapshot_id": w.snapshot.pk}


_SNAPSHOT_FLOWS = [{"id": "t9", "type": "tab", "label": "Flow 9"}]


def _eddie(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "membership_id": w.eddie_membership.pk}


def _role(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "role_id": w.role.pk}


def _invitation(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "invitation_id": w.invitation.pk}


def _link(w: World) -> dict[str, Any]:
    return {"token": w.invitation_secret}


def _device(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "device_id": w.fleet.device.pk}


def _group(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "group_id": w.fleet.group.pk}


def _pending_device(w: World, client: APIClient) -> dict[str, Any]:
    """A new code is for a device still waiting for registration: make one."""
    device, _ = registration_code_create(
        principal=Principal.for_user(w.acme.olivia), team=w.acme.team, name="Oven 9"
    )
    return {"team_slug": "acme", "device_id": device.pk}


def _grouped_device(w: World, client: APIClient) -> dict[str, Any]:
    """Removing a device from a group it is not in changes nothing: put it in first."""
    device_group_add_devices(
        principal=Principal.for_user(w.acme.olivia), group=w.fleet.group, devices=[w.fleet.device]
    )
    return _group(w)


def _developing(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "device_id": w.fleet.developing.pk}


def _developing_inject(w: World) -> dict[str, Any]:
    return {**_developing(w), "node_id": "inj"}


def _toggle_developer_mode(w: World, client: APIClient) -> dict[str, Any]:
    """POST (enter) needs a device out of developer mode, DELETE (leave) one in it; the audit
    check calls them in that order on the world's developing device: leave before the first,
    enter again before the second."""
    olivia = Principal.for_user(w.acme.olivia)
    device = Device.objects.get(pk=w.fleet.developing.pk)
    if device.developer_mode:
        device_developer_mode_leave(principal=olivia, device=device, keep=False)
    else:
        device_developer_mode_enter(principal=olivia, device=device)
    return _developing(w)


def _token(w: World) -> dict[str, Any]:
    return {"token_id": w.token.pk}


def _toggle_hosted_instance(w: World, client: APIClient) -> dict[str, Any]:
    """POST (create) needs line-1 without an instance, DELETE with one; the audit check calls
    them in that order, so remove the world's instance before the first, put one back before
    the second."""
    olivia = Principal.for_user(w.acme.olivia)
    found = HostedInstance.objects.filter(application=w.acme.line_1).first()
    if found is not None:
        hosted_instance_delete(principal=olivia, instance=found)
    else:
        hosted_instance_create(principal=olivia, application=w.acme.line_1)
    return _page_app(w)


def _stopped_hosted_instance(w: World, client: APIClient) -> dict[str, Any]:
    """Starting a running instance changes nothing: stop it first."""
    found = HostedInstance.objects.get(application=w.acme.line_1)
    hosted_instance_stop(principal=Principal.for_user(w.acme.olivia), instance=found)
    return _page_app(w)


def _running_hosted_instance(w: World, client: APIClient) -> dict[str, Any]:
    """Stopping a stopped instance changes nothing: start it first."""
    found = HostedInstance.objects.get(application=w.acme.line_1)
    hosted_instance_start(principal=Principal.for_user(w.acme.olivia), instance=found)
    return _page_app(w)


def _vera_user(w: World) -> dict[str, Any]:
    return {"user_id": w.acme.vera.pk}


def _dormant_user(w: World) -> dict[str, Any]:
    return {"user_id": w.dormant.pk}


def _reset(w: World) -> dict[str, Any]:
    return {"uidb64": w.reset_uid, "token": w.reset_token}


def _open_reset_link(w: World, client: APIClient) -> dict[str, Any]:
    """Follow the emailed link as its recipient: Django moves the token into the session."""
    # A fresh link: earlier sign-ins changed last_login, which invalidates older links.
    w.acme.olivia.refresh_from_db()
    token = default_token_generator.make_token(w.acme.olivia)
    response = client.get(f"/accounts/password/reset/{w.reset_uid}/{token}/")
    assert response.status_code == 302, response.status_code
    return {"uidb64": w.reset_uid, "token": "set-password"}


@dataclass(frozen=True)
class Sample:
    """How to call one URL pattern.

    ``scope``: "team" (reaches acme's data: the outsider gets 403/404), "user" (another user's
    own object: 403/404), "platform" (platform admins only: everyone else gets 403/404),
    "capability" (the URL itself is the credential, e.g. an invitation link: the outsider may
    read, but no write may succeed), "open" (not tied to a team).
    ``bodies``: the rightful actor's valid body per mutating method (family 31).
    ``prime``: for flows that need a prior step in the same session (a reset link stores its
    token in the session, then the form posts to ``.../set-password/``): called with the world
    and the rightful actor's client before the mutating call, returns the kwargs to call with.
    ``checked_inside``: pages whose decorator names the key for viewing while a method checks a
    stricter key inside the view; the RBAC matrix holds them to the key actually enforced.
    """

    scope: str
    kwargs: Callable[[World], dict[str, Any]] = _none
    bodies: dict[str, Body] = field(default_factory=dict)
    actor: str = "olivia"
    api: bool = True
    audit_exempt: str = ""
    prime: Callable[[World, APIClient], dict[str, Any]] | None = None
    checked_inside: dict[str, str] = field(default_factory=dict)


def _body(data: dict[str, Any]) -> Body:
    return lambda w: data


# Keyed by URL name; the comments group them by area.
ROUTES: dict[str, Sample] = {
    # API: the signed-in user
    "api-me": Sample("open"),
    "api-me-password": Sample(
        "open",
        bodies={"post": _body({"old_password": PASSWORD, "new_password": NEW_PASSWORD})},
    ),
    "api-token-list": Sample("open", bodies={"post": _body({"name": "ci"})}),
    "api-token-detail": Sample("user", _token, {"delete": _none}),
    "api-permission-table": Sample("open"),
    "api-team-list": Sample("open", bodies={"post": _body({"name": "New", "slug": "new-team"})}),
    # API: one team
    "api-team-detail": Sample(
        "team", _team, {"patch": _body({"name": "Acme Renamed"}), "delete": _none}
    ),
    "api-team-leave": Sample("team", _team, {"post": _none}, actor="eddie"),
    "api-application-list": Sample(
        "team", _team, {"post": _body({"name": "Line 2", "slug": "line-2"})}
    ),
    "api-application-detail": Sample(
        "team", _app, {"patch": _body({"name": "Line One"}), "delete": _none}
    ),
    "api-override-list": Sample(
        "team",
        _app,
        {"post": lambda w: {"membership": w.vera_membership.pk, "role": "dashboard"}},
    ),
    "api-override-detail": Sample(
        "team", lambda w: {**_app(w), "membership_id": w.vera_membership.pk}, {"delete": _none}
    ),
    "api-member-list": Sample("team", _team),
    "api-member-detail": Sample(
        "team", _eddie, {"patch": _body({"role": "viewer"}), "delete": _none}
    ),
    "api-invitation-list": Sample(
        "team", _team, {"post": _body({"email": "new@acme.test", "role": "viewer"})}
    ),
    "api-invitation-detail": Sample("team", _invitation, {"delete": _none}),
    "api-custom-role-list": Sample(
        "team", _team, {"post": _body({"name": "Auditor", "permissions": ["audit:read"]})}
    ),
    "api-custom-role-detail": Sample(
        "team", _role, {"patch": _body({"name": "Ops 2"}), "delete": _none}
    ),
    "api-flow-validate": Sample(
        "team", _team, {"post": _body({"flows": []})}, audit_exempt="a dry run: stores nothing"
    ),
    "api-snapshot-list": Sample(
        "team", _app, {"post": _body({"name": "v2", "flows": _SNAPSHOT_FLOWS})}
    ),
    "api-snapshot-detail": Sample("team", _snapshot, {"delete": _none}),
    "api-snapshot-export": Sample("team", _snapshot),
    "api-model-list": Sample("team", _team),
    "api-model-detail": Sample("team", _model, {"delete": _none}),
    "api-signing-key-list": Sample("team", _team),
    "api-signing-key-rotate": Sample("team", _team, {"post": _none}),
    "api-audit-event-list": Sample("team", _team),
    "api-audit-event-export-csv": Sample("team", _team),
    "api-audit-event-export-jsonl": Sample("team", _team),
    "api-audit-event-detail": Sample(
        "team", lambda w: {"team_slug": "acme", "event_id": w.event.pk}
    ),
    "api-audit-settings": Sample(
        "team",
        _team,
        {"put": _body({"audit_retention_days": 30}), "patch": _body({"audit_retention_days": 31})},
    ),
    # API: the fleet (a runner's own endpoints, then the team's)
    "api-device-register": Sample(
        "capability",
        bodies={
            "post": lambda w: {
                "token": w.fleet.token_raw,
                "sealing_key": SEALING_KEY_B64,
                "agent_version": "0.1.0",
                "hostname": "probe",
            }
        },
        actor="anonymous",
    ),
    "api-device-self": Sample("open"),
    "api-device-list": Sample("team", _team),
    "api-device-detail": Sample(
        "team", _device, {"patch": _body({"name": "Motor 4", "tags": ["PRD"]}), "delete": _none}
    ),
    "api-device-suspend": Sample("team", _device, {"post": _none}),
    "api-device-resume": Sample(
        "team", lambda w: {"team_slug": "acme", "device_id": w.fleet.paused.pk}, {"post": _none}
    ),
    "api-device-decommission": Sample("team", _device, {"post": _none}),
    "api-device-bulk": Sample(
        "team",
        _team,
        {"post": lambda w: {"action": "tag", "ids": [w.fleet.device.pk], "tags": ["line-3"]}},
    ),
    "api-device-registration-code": Sample("team", _team, {"post": _body({"name": "Oven 2"})}),
    # the device link's HTTP side: a runner's bundle parts, then targets and history
    "api-device-bundle-part": Sample("open", lambda w: {"generation": 1, "part": "flows.json"}),
    "api-device-target": Sample("team", _device, {"post": lambda w: {"snapshot": w.snapshot.pk}}),
    "api-application-deploy": Sample("team", _app, {"post": lambda w: {"snapshot": w.snapshot.pk}}),
    "api-device-history": Sample("team", _device),
    # developer mode (the world's developing device is offline: its live calls answer 409)
    "api-device-developer-mode": Sample(
        "team",
        _developing,
        {"post": _none, "delete": _body({"keep": False})},
        prime=_toggle_developer_mode,
    ),
    "api-device-flows": Sample("team", _developing),
    "api-device-flows-state": Sample("team", _developing),
    "api-device-inject": Sample("team", _developing_inject),
    # development instances (the world's is line-1's; creating one replaces it)
    "api-hosted-instance": Sample(
        "team",
        _page_app,
        {"post": _body({"name": "Line 1 dev"}), "delete": _none},
        prime=_toggle_hosted_instance,
    ),
    "api-hosted-instance-start": Sample(
        "team", _page_app, {"post": _none}, prime=_stopped_hosted_instance
    ),
    "api-hosted-instance-stop": Sample(
        "team", _page_app, {"post": _none}, prime=_running_hosted_instance
    ),
    "api-hosted-instance-restart": Sample("team", _page_app, {"post": _none}),
    "api-hosted-instance-logs": Sample("team", _page_app),
    "api-provisioning-token-list": Sample(
        "team", _team, {"post": _body({"name": "Line 2 token", "max_uses": 5})}
    ),
    "api-provisioning-token-detail": Sample(
        "team", lambda w: {"team_slug": "acme", "token_id": w.fleet.token.pk}, {"delete": _none}
    ),
    "api-device-group-list": Sample("team", _team, {"post": _body({"name": "Ovens"})}),
    "api-device-group-detail": Sample(
        "team",
        lambda w: {"team_slug": "acme", "group_id": w.fleet.group.pk},
        {"patch": _body({"env": {"LINE": "1"}}), "delete": _none},
    ),
    # API: invitation links
    "api-invitation-show": Sample("capability", _link),
    "api-invitation-accept": Sample("capability", _link, {"post": _none}, actor="newbie"),
    "api-invitation-decline": Sample("capability", _link, {"post": _none}, actor="newbie"),
    # API: platform admins
    "api-platform-users": Sample("platform", actor="paula"),
    "api-platform-user": Sample("platform", _vera_user, actor="paula"),
    "api-platform-user-deactivate": Sample("platform", _vera_user, {"post": _none}, actor="paula"),
    "api-platform-user-reactivate": Sample(
        "platform", _dormant_user, {"post": _none}, actor="paula"
    ),
    "api-platform-teams": Sample("platform", actor="paula"),
    "api-platform-settings": Sample(
        "platform",
        bodies={"put": _body({"open_signup": False}), "patch": _body({"open_signup": False})},
        actor="paula",
    ),
    "api-schema": Sample("open"),
    "api-docs": Sample("open"),
    "api-redoc": Sample("open"),
    # pages: accounts
    "healthz": Sample("open", api=False),
    "login": Sample(
        "open",
        api=False,
        actor="anonymous",
        bodies={"post": _body({"email": "olivia@acme.test", "password": PASSWORD})},
        audit_exempt="changes only the session",
    ),
    "logout": Sample(
        "open", api=False, bodies={"post": _none}, audit_exempt="changes only the session"
    ),
    "password_change": Sample(
        "open",
        api=False,
        bodies={
            "post": _body(
                {
                    "old_password": PASSWORD,
                    "new_password1": NEW_PASSWORD,
                    "new_password2": NEW_PASSWORD,
                }
            )
        },
    ),
    "password_change_done": Sample("open", api=False),
    "tokens": Sample(
        "open",
        api=False,
        bodies={"post": _body({"name": "page token", "all_teams": "on", "expires_in_days": "30"})},
    ),
    "token_revoke": Sample("user", _token, {"post": _none}, api=False),
    "password_reset": Sample(
        "open",
        api=False,
        actor="anonymous",
        bodies={"post": _body({"email": "olivia@acme.test"})},
    ),
    "password_reset_done": Sample("open", api=False),
    "password_reset_confirm": Sample(
        "capability",
        _reset,
        {"post": _body({"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})},
        actor="anonymous",
        api=False,
        prime=_open_reset_link,
    ),
    "password_reset_complete": Sample("open", api=False),
    # pages: teams
    "home": Sample("open", api=False),
    "team_create": Sample(
        "open", api=False, bodies={"post": _body({"name": "Page Team", "slug": "page-team"})}
    ),
    "invitation": Sample(
        "capability", _link, {"post": _body({"action": "accept"})}, actor="newbie", api=False
    ),
    # Signed in, everyone is sent on (302) to the invitation page above; no write happens here.
    "invited_signup": Sample(
        "capability",
        _link,
        actor="newbie",
        api=False,
        audit_exempt="a signed-in caller is only redirected to the invitation page",
    ),
    "signup": Sample(
        "open",
        api=False,
        actor="anonymous",
        bodies={
            "post": _body(
                {
                    "email": "probe-signup@acme.test",
                    "password": NEW_PASSWORD,
                    "password_again": NEW_PASSWORD,
                }
            )
        },
    ),
    "platform_signup": Sample(
        "platform", _none, {"post": _body({"open_signup": "0"})}, actor="paula", api=False
    ),
    "platform_user_create": Sample(
        "platform",
        _none,
        {"post": _body({"email": "probe-new@acme.test", "password": "plant-floor-Walrus-42"})},
        actor="paula",
        api=False,
    ),
    "platform_users": Sample("platform", actor="paula", api=False),
    "platform_user_deactivate": Sample(
        "platform", _vera_user, {"post": _none}, actor="paula", api=False
    ),
    "platform_user_reactivate": Sample(
        "platform", _dormant_user, {"post": _none}, actor="paula", api=False
    ),
    "platform_teams": Sample("platform", actor="paula", api=False),
    "dashboard": Sample("team", _team, api=False),
    "settings": Sample(
        "team", _team, {"post": _body({"name": "Acme Two", "slug": "acme"})}, api=False
    ),
    "team_delete": Sample("team", _team, {"post": _body({"confirm": "acme"})}, api=False),
    "leave": Sample("team", _team, {"post": _none}, actor="eddie", api=False),
    "team_log": Sample("team", _team, api=False),
    "applications": Sample("team", _team, api=False),
    "application_create": Sample(
        "team",
        _team,
        {"post": _body({"name": "Line 3", "slug": "line-3", "description": ""})},
        api=False,
    ),
    "application_edit": Sample(
        "team",
        _page_app,
        {"post": _body({"name": "Line Uno", "slug": "line-1", "description": ""})},
        api=False,
    ),
    "application_delete": Sample("team", _page_app, {"post": _none}, api=False),
    "application_access": Sample(
        "team",
        _page_app,
        {"post": lambda w: {"membership": w.vera_membership.pk, "role": "dashboard"}},
        api=False,
        checked_inside={"post": "member:role"},
    ),
    "application": Sample("team", _page_app, api=False),
    "application_log": Sample("team", _page_app, api=False),
    "snapshots": Sample("team", _page_app, api=False),
    "snapshot_create": Sample(
        "team",
        _page_app,
        {"post": _body({"name": "v2", "flows_text": '[{"id": "t9", "type": "tab"}]'})},
        api=False,
    ),
    "snapshot_detail": Sample("team", _page_snapshot, api=False),
    "snapshot_export": Sample("team", _page_snapshot, api=False),
    "models": Sample("team", _team, api=False),
    "model_delete": Sample("team", _model, {"post": _none}, api=False),
    "members": Sample("team", _team, api=False),
    "member_invite": Sample(
        "team", _team, {"post": _body({"email": "p@acme.test", "role": "viewer"})}, api=False
    ),
    "member_role": Sample(
        "team", _eddie, {"post": _body({"role": "viewer", "custom_role": ""})}, api=False
    ),
    "member_remove": Sample("team", _eddie, {"post": _none}, api=False),
    "invitation_revoke": Sample("team", _invitation, {"post": _none}, api=False),
    "roles": Sample("team", _team, api=False),
    "role_create": Sample(
        "team",
        _team,
        {"post": _body({"name": "Auditor", "description": "", "permissions": ["audit:read"]})},
        api=False,
    ),
    "role_edit": Sample(
        "team",
        _role,
        {"post": _body({"name": "Ops 2", "description": "", "permissions": ["flow:read"]})},
        api=False,
    ),
    "role_delete": Sample("team", _role, {"post": _none}, api=False),
    # pages: devices
    "fleet": Sample(
        "team",
        _team,
        {"post": lambda w: {"action": "add_tag", "tag": "probe", "devices": [w.fleet.device.pk]}},
        api=False,
        checked_inside={"post": "device:manage"},
    ),
    "application_devices": Sample(
        "team",
        _page_app,
        {"post": lambda w: {"action": "add_tag", "tag": "probe", "devices": [w.fleet.device.pk]}},
        api=False,
        checked_inside={"post": "device:manage"},
    ),
    "device_add": Sample(
        "team", _team, {"post": _body({"name": "Probe", "expires_in_days": "7"})}, api=False
    ),
    "device_tokens": Sample("team", _team, api=False),
    "device_token_revoke": Sample(
        "team",
        lambda w: {"team_slug": "acme", "token_id": w.fleet.token.pk},
        {"post": _none},
        api=False,
    ),
    "device_detail": Sample("team", _device, api=False),
    "device_settings": Sample(
        "team",
        _device,
        {"post": _body({"name": "Motor 3b", "tags": "line-3", "env": "A=1"})},
        api=False,
    ),
    "device_deploy": Sample(
        "team",
        _device,
        {"post": lambda w: {"snapshot": w.snapshot.pk}},
        api=False,
    ),
    "device_suspend": Sample("team", _device, {"post": _none}, api=False),
    "device_resume": Sample(
        "team",
        lambda w: {"team_slug": "acme", "device_id": w.fleet.paused.pk},
        {"post": _none},
        api=False,
    ),
    "device_decommission": Sample(
        "team", _device, {"post": _body({"confirm": "Motor 3"})}, api=False
    ),
    "device_delete": Sample("team", _device, {"post": _body({"confirm": "Motor 3"})}, api=False),
    "device_registration_code": Sample(
        "team", _device, {"post": _none}, api=False, prime=_pending_device
    ),
    "device_groups": Sample("team", _team, api=False),
    "device_group_create": Sample(
        "team",
        _team,
        {"post": _body({"name": "Ovens", "env_name": ["LINE"], "env_value": ["1"]})},
        api=False,
    ),
    "device_group": Sample("team", _group, api=False),
    "device_group_edit": Sample(
        "team",
        _group,
        {"post": _body({"name": "Presses 2", "env_name": ["ZONE"], "env_value": ["A"]})},
        api=False,
    ),
    "device_group_delete": Sample("team", _group, {"post": _none}, api=False),
    "device_group_add_devices": Sample(
        "team", _group, {"post": lambda w: {"devices": [w.fleet.device.pk]}}, api=False
    ),
    "device_group_remove_devices": Sample(
        "team",
        _group,
        {"post": lambda w: {"devices": [w.fleet.device.pk]}},
        api=False,
        prime=_grouped_device,
    ),
    "hosted_instance_logs": Sample("team", _page_app, api=False),
    "device_developer": Sample("team", _developing, api=False),
    "device_developer_enter": Sample("team", _device, {"post": _none}, api=False),
    "device_developer_leave": Sample(
        "team", _developing, {"post": _body({"action": "revert", "name": ""})}, api=False
    ),
    "device_developer_deploy": Sample("team", _developing, api=False),
    "device_developer_inject": Sample("team", _developing_inject, api=False),
}


# --- routes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    pattern: str
    name: str
    callback: Callable[..., Any]


def all_routes() -> list[Route]:
    def walk(patterns: list[Any], prefix: str) -> Iterator[Route]:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield Route(prefix + str(entry.pattern), entry.name or "", entry.callback)

    return list(walk(get_resolver().url_patterns, ""))


def sample_of(route: Route) -> Sample:
    """The route's row; a clear failure when it has none."""
    sample = ROUTES.get(route.name)
    if sample is None:
        raise AssertionError(unlisted_message([route]))
    return sample


def unlisted_message(routes: list[Route]) -> str:
    rows = "\n".join(f'    "{route.name}": Sample(...),  # {route.pattern}' for route in routes)
    return (
        f"URL patterns without a row in tests/routes.py ROUTES (add one per pattern: scope, "
        f"kwargs, bodies of its mutating methods):\n{rows}"
    )


def view_class(route: Route) -> Any:
    return getattr(route.callback, "cls", None) or getattr(route.callback, "view_class", None)


def handled_methods(route: Route) -> set[str] | None:
    """Methods the view has a handler for; None when it cannot be told (function views)."""
    actions = getattr(route.callback, "actions", None)
    if actions:
        return set(actions)
    cls = view_class(route)
    if cls is not None:
        return {method for method in METHODS if callable(getattr(cls, method, None))}
    return None


_CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def route_url(route: Route, kwargs: dict[str, Any]) -> str:
    return "/" + _CONVERTER.sub(lambda m: str(kwargs[m["name"]]), route.pattern)


def client_as(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def missing_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The same kwargs pointing at nothing: numbers that are no row, slugs that are no team."""
    return {
        name: 987654321 if isinstance(value, int) else "no-such-thing"
        for name, value in kwargs.items()
    }


def missing_status(route: Route, sample: Sample, world: World, method: str) -> int:
    url = route_url(route, missing_kwargs(sample.kwargs(world)))
    response, _, _ = probe(client_as(world.globex.oscar), method, url, {}, sample.api)
    return int(response.status_code)


def persona(world: World, name: str) -> User | None:
    people = {
        "olivia": world.acme.olivia,
        "eddie": world.acme.eddie,
        "vera": world.acme.vera,
        "dana": world.acme.dana,
        "oscar": world.globex.oscar,
        "newbie": world.newbie,
        "paula": world.paula,
    }
    return None if name == "anonymous" else people[name]


def call(client: APIClient, method: str, url: str, body: dict[str, Any], api: bool) -> Any:
    if method == "get":
        return client.get(url, body)
    if api:
        return getattr(client, method)(url, body, format="json")
    return getattr(client, method)(url, body)


# --- snapshots ----------------------------------------------------------------------------


def snapshot_models() -> list[type[models.Model]]:
    return [
        model
        for model in django_apps.get_models()
        if model.__module__.startswith("apps.") or model._meta.app_label == "guardian"
    ]


def _team_filter(model: type[models.Model], team: Team) -> models.Q | None:
    """How ``model``'s rows of ``team`` are found; None: no path (the whole table counts)."""
    if model is Team:
        return models.Q(pk=team.pk)
    if model is AuditEvent:
        return models.Q(team_key=team.pk)
    if model is AuditChainHead:
        return models.Q(chain_key=team.pk)
    if model is User:
        return models.Q(memberships__team=team)
    fks = [f for f in model._meta.concrete_fields if isinstance(f, models.ForeignKey)]
    for fk in fks:
        if fk.related_model is Team:
            return models.Q(**{fk.name: team})
    for fk in fks:
        if fk.related_model is User:
            return models.Q(**{f"{fk.name}__memberships__team": team})
        for inner in fk.related_model._meta.concrete_fields:  # type: ignore[union-attr]  # a ForeignKey always has a related model
            if isinstance(inner, models.ForeignKey) and inner.related_model is Team:
                return models.Q(**{f"{fk.name}__{inner.name}": team})
    return None


def snapshot(team: Team | None = None) -> dict[str, str]:
    """A digest per table: every row (or every row of ``team``), every column."""
    digests = {}
    for model in snapshot_models():
        rows = model._default_manager.all()
        if team is not None:
            condition = _team_filter(model, team)
            if condition is not None:
                rows = rows.filter(condition).distinct()
        values = list(rows.order_by("pk").values_list())
        digests[model._meta.label] = hashlib.sha256(repr(values).encode()).hexdigest()
    return digests


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(label for label in before if before[label] != after.get(label))


def probe(
    client: APIClient,
    method: str,
    url: str,
    body: dict[str, Any],
    api: bool,
    team: Team | None = None,
) -> tuple[Any, dict[str, str], dict[str, str]]:
    """Call once inside a savepoint that is always undone (the world stays the same for the
    next probe); return the response and the snapshots before and after."""
    before = snapshot(team)
    sid = transaction.savepoint()
    try:
        response = call(client, method, url, body, api)
        after = snapshot(team)
    finally:
        transaction.savepoint_rollback(sid)
    return response, before, after
