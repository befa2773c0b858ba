"""Developer mode: a member edits one device's flows live, through the runner's own Admin API.

The platform has no flow editor yet, so the device's Admin API is the editor's back end:
``device_dev_call`` sends a ``dev_request`` command to the device's live link (a direct group
send, not on commit: the caller waits for the answer) with a fresh process-specific reply
channel, and the link forwards the device's ``dev_result`` there (docs/device-protocol.md,
"Developer mode"). The agent reaches ``GET/POST /flows``, ``GET /flows/state`` and
``POST /inject/<id>`` only.

While a device is in developer mode its target is frozen: issuing one (page, API, application
deploy) is refused with 409 ``developer_mode``. Leaving either keeps the device's flows as a new
snapshot of its application (parent: the target's snapshot, whose env, settings, model
references and credentials it inherits) issued as the device's new target, or reverts to the
target (a new generation of the target's snapshot, which the agent applies like any target).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from asgiref.sync import async_to_sync
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers
from django.db import transaction
from django.utils import timezone

from apps.accounts.principal import Principal
from apps.core.errors import Conflict, ManifoldError, NotFound, ValidationError
from apps.devices.bus import device_command
from apps.devices.models import Device, DeviceStatus, DeviceTarget
from apps.devices.services.link import announce_state, audit_device
from apps.devices.services.targets import issue_target
from apps.flows.validation import flows_valid, flows_validate
from apps.snapshots.services import FlowsRejected, snapshot_create, snapshot_credentials
from apps.teams.access import require_team_permission

DEVELOP_PERMISSION: Final = "device:develop"
# How long a caller waits for the device's answer (the agent gives the engine as long).
DEV_CALL_SECONDS: Final = 30.0
# Statuses of a device whose link is up (a suspended one is linked but refuses dev requests).
LINKED: Final = frozenset({DeviceStatus.ONLINE, DeviceStatus.UPDATING, DeviceStatus.ERROR})
NODE_ID_CHARACTERS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
)


class DeviceTimeout(ManifoldError):  # noqa: N818  # the HTTP names read best
    """The device did not answer in time (504)."""

    status_code = 504
    code = "device_timeout"


class DeviceAnswerError(ManifoldError):
    """The device answered, but not with what the platform needs (502)."""

    status_code = 502
    code = "device_error"


@dataclass(frozen=True)
class DevAnswer:
    """The device's answer to one Admin API call: its HTTP status and JSON body."""

    status: int
    body: Any


def _refuse_unlinked(device: Device) -> None:
    if device.suspended:
        raise Conflict(
            f"Device {device.name!r} is suspended: it takes no developer requests.",
            code="device_suspended",
        )
    if device.status not in LINKED:
        raise Conflict(
            f"Device {device.name!r} is offline: developer mode needs its live link.",
            code="device_offline",
        )


# One reply layer per event loop, kept while the loop lives. channels_redis receives on one
# event loop per layer instance, so the process's shared layer (the server's loop) cannot take
# the replies of a call made on another loop (a thread's ``async_to_sync``, a test's client);
# a layer made per call instead paid new Redis connections every time. channels_redis closes
# a loop's connections when that loop closes; the SQLite layer's poller ends with its queues.
_reply_layers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
    weakref.WeakKeyDictionary()
)
_reply_layers_lock = threading.Lock()


def _reply_layer() -> Any:
    loop = asyncio.get_running_loop()
    with _reply_layers_lock:
        layer = _reply_layers.get(loop)
        if layer is None:
            layer = _reply_layers[loop] = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    return layer


async def device_dev_call(
    device: Device,
    method: str,
    path: str,
    body: Any = None,
    timeout: float = DEV_CALL_SECONDS,  # noqa: ASYNC109  # the caller's budget (asyncio.timeout)
) -> DevAnswer:
    """One Admin API call on ``device`` over its live link; answers the device's status and
    body. 409 ``device_offline`` / ``device_suspended`` without a link to use, 504
    ``device_timeout`` when no answer comes within ``timeout`` seconds. Checks no permission:
    callers do (``device_dev_*`` below)."""
    _refuse_unlinked(device)
    if not device.link_channel:
        raise Conflict(
            f"Device {device.name!r} is offline: developer mode needs its live link.",
            code="device_offline",
        )
    layer = _reply_layer()
    # Process-specific and unguessable: only this layer instance reads it, whatever the layer.
    reply_to = await layer.new_channel()
    request = secrets.token_hex(12)
    command = device_command(
        "dev_request", request=request, method=method, path=path, body=body, reply_to=reply_to
    )
    try:
        await layer.send(device.link_channel, command)
        async with asyncio.timeout(timeout):
            while True:
                reply = await layer.receive(reply_to)
                if reply.get("request") == request:
                    break
    except TimeoutError:
        raise DeviceTimeout(
            f"Device {device.name!r} did not answer within {timeout:g} s "
            "(its link may have dropped)."
        ) from None
    finally:
        discard = getattr(layer, "discard_channel", None)  # the SQLite layer's reply queue
        if discard is not None:
            await discard(reply_to)
    status = reply.get("status")
    return DevAnswer(status if isinstance(status, int) else 502, reply.get("body"))


def dev_call(device: Device, method: str, path: str, body: Any = None) -> DevAnswer:
    """``device_dev_call`` for synchronous code (views, services). Under ASGI every request's
    synchronous code runs on a thread of its own, so waiting here holds no one else up."""
    answer: DevAnswer = async_to_sync(device_dev_call)(device, method, path, body, DEV_CALL_SECONDS)
    return answer


# --- checks every developer-mode service shares ------------------------------------------------


def _require_develop(principal: Principal, device: Device, *extra: str) -> None:
    access = require_team_permission(principal, device.team, DEVELOP_PERMISSION)
    for permission in (DEVELOP_PERMISSION, *extra):
        access.require(permission, device.application)


def _require_developing(device: Device) -> None:
    if not device.developer_mode:
        raise Conflict(
            f"Device {device.name!r} is not in developer mode: enter developer mode first.",
            code="not_in_developer_mode",
        )


def _fresh(device: Device) -> Device:
    found = (
        Device.objects.select_related("team", "application", "target__snapshot")
        .filter(pk=device.pk)
        .first()
    )
    if found is None or found.decommissioned_at is not None:
        raise NotFound("Device not found.")
    return found


def _lock(device: Device) -> Device:
    found = (
        Device.objects.select_for_update(of=("self",))
        .select_related("team", "application", "target__snapshot", "active_target__snapshot")
        .filter(pk=device.pk)
        .first()
    )
    if found is None:
        raise NotFound("Device not found.")
    return found


def _device_error(answer: DevAnswer, what: str) -> ManifoldError:
    """The device's refusal as the platform's error (its own 4xx stays a 4xx)."""
    body = answer.body if isinstance(answer.body, Mapping) else {}
    message = str(body.get("message") or answer.body or "no answer")[:500]
    code = str(body.get("code") or "device_error")[:60]
    if answer.status == 403:
        return ValidationError(f"The device refused {what}: {message}", code=code)
    if answer.status == 404:
        return NotFound(f"The device has no such node: {message}", code=code)
    if answer.status == 400:
        return ValidationError(f"The device rejected {what}: {message}", code=code)
    if answer.status in (409, 429):
        return Conflict(f"The device could not {what} now: {message}", code=code)
    return DeviceAnswerError(f"The device failed to {what} ({answer.status}): {message}")


# --- enter and leave ---------------------------------------------------------------------------


def device_developer_mode_enter(*, principal: Principal, device: Device) -> Device:
    """Freeze the device's target and let ``device:develop`` holders edit its flows live
    (``device.developer_mode.entered``). The device need not be online to enter."""
    principal.require_writable("enter developer mode")
    with transaction.atomic():
        device = _lock(device)
        _require_develop(principal, device)
        if device.decommissioned_at is not None:
            raise Conflict(f"Device {device.name!r} is decommissioned.", code="decommissioned")
        if device.registered_at is None:
            raise Conflict(f"Device {device.name!r} has not registered yet.", code="not_registered")
        if device.suspended:
            raise Conflict(
                f"Device {device.name!r} is suspended: resume it first.", code="device_suspended"
            )
        if device.application is None:
            raise Conflict(
                "Move the device into an application first: developer mode keeps its changes "
                "as a snapshot of that application.",
                code="no_application",
            )
        if device.developer_mode:
            return device
        device.developer_mode = True
        device.save(update_fields=["developer_mode", "updated_at"])
        target = device.target
        audit_device(
            "device.developer_mode.entered",
            principal,
            device,
            {"target_snapshot": target.snapshot_id if target else None},
        )
        announce_state(device)
    return device


@dataclass(frozen=True)
class DeveloperModeLeft:
    """What leaving did: the new target (None: nothing to revert to) and, when the changes
    were kept, the snapshot made of them."""

    device: Device
    target: DeviceTarget | None
    snapshot_id: int | None


def _kept_name(device: Device, name: str) -> str:
    if name.strip():
        return name
    stamp = timezone.now().strftime("%Y-%m-%d %H:%M")
    return f"{device.name[:60]} developer mode {stamp}"


def _device_flows(device: Device) -> list[Any]:
    answer = dev_call(device, "GET", "/flows")
    if answer.status != 200:
        raise _device_error(answer, "to read its flows")
    body = answer.body
    flows = body.get("flows") if isinstance(body, Mapping) else body
    if not isinstance(flows, list):
        raise DeviceAnswerError("The device answered its flows in a form the platform cannot use.")
    return flows


def device_developer_mode_leave(
    *, principal: Principal, device: Device, keep: bool, name: str = ""
) -> DeveloperModeLeft:
    """Leave developer mode (``device.developer_mode.left``).

    ``keep``: read the device's flows over the link (so it must be online: 409
    ``device_offline`` otherwise, nothing changes), store them as a new snapshot of its
    application (``name``, or a dated default) with the target's snapshot as parent, and issue
    that snapshot as the device's target. Otherwise revert: issue the target's snapshot again
    under a new generation; that works offline (the target waits for the device)."""
    principal.require_writable("leave developer mode")
    device = _fresh(device)
    _require_develop(principal, device, *(("snapshot:create",) if keep else ()))
    _require_developing(device)
    flows: list[Any] | None = None
    if keep:
        if device.application is None:
            raise Conflict("The device has no application to keep a snapshot in.")
        flows = _device_flows(device)  # before the transaction: no lock held while waiting
    with transaction.atomic():
        device = _lock(device)
        _require_developing(device)
        parent = device.target.snapshot if device.target is not None else None
        snapshot = None
        if flows is not None:
            application = device.application
            if application is None:
                raise Conflict("The device has no application to keep a snapshot in.")
            if parent is not None and parent.application_id != application.pk:
                parent = None
            snapshot = snapshot_create(
                principal=principal,
                application=application,
                name=_kept_name(device, name),
                description=(
                    f"Kept from developer mode on device {device.name} (#{device.pk}) "
                    f"by {principal.label}."
                ),
                flows={"flows": flows, "credentials": _kept_credentials(parent, flows)},
                env=parent.env if parent is not None else None,
                runner_settings=parent.runner_settings if parent is not None else None,
                model_refs=parent.model_refs if parent is not None else None,
                parent=parent,
            )
        device.developer_mode = False
        device.save(update_fields=["developer_mode", "updated_at"])
        deployed = snapshot or parent
        target = issue_target(principal, device, deployed) if deployed is not None else None
        audit_device(
            "device.developer_mode.left",
            principal,
            device,
            {
                "kept": keep,
                "snapshot": deployed.pk if deployed is not None else None,
                "generation": target.generation if target is not None else None,
            },
        )
        announce_state(device)
    return DeveloperModeLeft(device, target, snapshot.pk if snapshot is not None else None)


def _kept_credentials(parent: Any, flows: list[Any]) -> dict[str, dict[str, Any]]:
    """The parent's credentials of the nodes still in ``flows`` (the device's Admin API never
    answers credentials, and developer mode sends none: they stay sealed on the platform)."""
    if parent is None:
        return {}
    ids = {str(node.get("id")) for node in flows if isinstance(node, Mapping)}
    return {node: fields for node, fields in snapshot_credentials(parent).items() if node in ids}


# --- the live calls ----------------------------------------------------------------------------


def _developing(principal: Principal, device: Device) -> Device:
    device = _fresh(device)
    _require_develop(principal, device)
    _require_developing(device)
    return device


def device_dev_flows(*, principal: Principal, device: Device) -> dict[str, Any]:
    """The flows the device runs now: ``{"flows": [...], "rev": "..."}``."""
    device = _developing(principal, device)
    answer = dev_call(device, "GET", "/flows")
    if answer.status != 200 or not isinstance(answer.body, Mapping):
        raise _device_error(answer, "to read its flows")
    flows = answer.body.get("flows")
    if not isinstance(flows, list):
        raise DeviceAnswerError("The device answered its flows in a form the platform cannot use.")
    return {"flows": flows, "rev": answer.body.get("rev")}


def device_dev_state(*, principal: Principal, device: Device) -> dict[str, Any]:
    """The engine's ``GET /flows/state`` (``{"state": "start" | "stop" | "safe", ...}``)."""
    device = _developing(principal, device)
    answer = dev_call(device, "GET", "/flows/state")
    if answer.status != 200 or not isinstance(answer.body, Mapping):
        raise _device_error(answer, "to report its state")
    return dict(answer.body)


def clean_dev_flows(flows: Any) -> list[Any]:
    """Flows a member sends in developer mode: a flows.json array (or ``{"flows": [...]}``),
    without credentials, that the platform's validator (the runner's own) accepts."""
    if isinstance(flows, Mapping):
        if set(flows) - {"flows", "rev"} or not isinstance(flows.get("flows"), list):
            raise ValidationError(
                'Send a flows.json array or {"flows": [...]}.',
                fields={"flows": "A JSON array of nodes."},
            )
        flows = flows["flows"]
    if not isinstance(flows, list):
        raise ValidationError(
            "The flows must be a JSON array of nodes (a Node-RED export).",
            fields={"flows": "A JSON array of nodes."},
        )
    with_credentials = [
        str(node.get("id"))
        for node in flows
        if isinstance(node, Mapping) and node.get("credentials")
    ]
    if with_credentials:
        message = (
            "Developer mode sends no credentials (the device keeps the ones it has; a snapshot "
            f"sets new ones): remove them from node(s) {', '.join(with_credentials[:5])}."
        )
        raise ValidationError(message, fields={"flows": message}, code="credentials_not_allowed")
    problems = flows_validate(flows)
    if not flows_valid(problems):
        raise FlowsRejected(problems)
    return flows


def device_dev_deploy(*, principal: Principal, device: Device, flows: Any) -> dict[str, Any]:
    """Validate ``flows`` and deploy them on the device (a full deploy through its own
    deployer); audited as ``device.developer_mode.deployed``. Answers the engine's
    ``{"rev", "failures"?, "missing_types"?}``."""
    principal.require_writable("deploy flows in developer mode")
    device = _developing(principal, device)
    nodes = clean_dev_flows(flows)
    answer = dev_call(device, "POST", "/flows", {"flows": nodes})
    if answer.status != 200 or not isinstance(answer.body, Mapping):
        raise _device_error(answer, "deploy the flows")
    result = dict(answer.body)
    with transaction.atomic():
        audit_device(
            "device.developer_mode.deployed",
            principal,
            device,
            {
                "nodes": len(nodes),
                "rev": result.get("rev"),
                "failures": len(result.get("failures") or []),
            },
        )
    return result


def device_dev_inject(*, principal: Principal, device: Device, node_id: str) -> None:
    """Press an inject node's button on the device (``device.developer_mode.injected``)."""
    principal.require_writable("inject in developer mode")
    if not 1 <= len(node_id) <= 64 or not set(node_id) <= NODE_ID_CHARACTERS:
        raise ValidationError(
            "A node id is 1 to 64 letters, digits, '.', '_' or '-'.",
            fields={"node_id": "Invalid node id."},
        )
    device = _developing(principal, device)
    answer = dev_call(device, "POST", f"/inject/{node_id}")
    if answer.status != 200:
        raise _device_error(answer, f"inject node {node_id}")
    with transaction.atomic():
        audit_device("device.developer_mode.injected", principal, device, {"node": node_id})
