"""Developer mode: a member edits one device's flows live, through the runner's own Admin API.

The platform has no flow editor yet, so the device's Admin API is the editor's back end:
``device_dev_call`` sends a ``dev_request`` command to the device's live link (a direct group
send, not on commit: the caller waits for the answer) with a fresh process-specific reply
channel, and the link forwards the device's ``dev_result`` there (docs/device-protocol.md,
"Developer mode"). The agent reaches ``GET/POST /flows``, ``GET /flows/state`` and
``POST /inject/<id>`` only.

Credentials a member sends with the flows never travel or rest in clear: ``device_dev_deploy``
takes them out of the nodes, seals them to the device's own X25519 key (as a target's
``credentials.sealed``; the agent opens them and puts them back into the nodes before its
engine sees the flows) and keeps them, sealed with the team's data key, in the device's
``DeveloperCredentials`` until it leaves developer mode.

While a device is in developer mode its target is frozen: issuing one (page, API, application
deploy) is refused with 409 ``developer_mode``. Leaving either keeps the device's flows as a new
snapshot of its application (parent: the target's snapshot, whose env, settings, model
references and credentials it inherits) issued as the device's new target, or reverts to the
target (a new generation of the target's snapshot, which the agent applies like any target).
"""

from __future__ import annotations

import asyncio
import base64
import json
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
from apps.devices.models import DeveloperCredentials, Device, DeviceStatus, DeviceTarget
from apps.devices.services.link import announce_state, audit_device
from apps.devices.services.targets import issue_target, seal_to_device
from apps.flows.validation import flows_valid, flows_validate
from apps.snapshots import keys
from apps.snapshots.services import FlowsRejected, snapshot_create, snapshot_credentials
from apps.teams.access import require_team_permission
from edge_runner.protocol import manifest

DEVELOP_PERMISSION: Final = "device:develop"
# How long a caller waits for the device's answer (the agent gives the engine as long).
DEV_CALL_SECONDS: Final = 30.0
# Statuses of a device whose link is up (a suspended one is linked but refuses dev requests).
LINKED: Final = frozenset({DeviceStatus.ONLINE, DeviceStatus.UPDATING, DeviceStatus.ERROR})
NODE_ID_CHARACTERS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
)
# What one developer-mode deploy may carry as credentials. The request travels as one link
# frame (256 KB with the flows), and the sealed blob is about 1.8 times the plaintext.
MAX_CREDENTIAL_NODES: Final = 100
MAX_CREDENTIAL_FIELDS: Final = 20
MAX_CREDENTIAL_NAME: Final = 100
MAX_CREDENTIAL_VALUE: Final = 16 * 1024
MAX_CREDENTIALS_BYTES: Final = 32 * 1024
# Node-RED's "unchanged" placeholder: the device (and the kept snapshot) keep the stored value.
KEEP_CREDENTIAL: Final = "__PWRD__"
# The associated data of the kept credentials: a value copied to a snapshot's column (or
# another team's row) does not open.
DEVELOPER_CREDENTIALS_PURPOSE: Final = "developer-credentials"


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
        developed = DeveloperCredentials.objects.filter(device=device).first()
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
                flows={
                    "flows": flows,
                    "credentials": _kept_credentials(parent, developed, flows),
                },
                env=parent.env if parent is not None else None,
                runner_settings=parent.runner_settings if parent is not None else None,
                model_refs=parent.model_refs if parent is not None else None,
                parent=parent,
            )
        if developed is not None:
            developed.delete()
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


def _kept_credentials(
    parent: Any, developed: DeveloperCredentials | None, flows: list[Any]
) -> dict[str, dict[str, Any]]:
    """The credentials of the nodes still in ``flows``: the parent's, with those sent in
    developer mode laid over them field by field (``""`` removes a field). The device's Admin
    API never answers credentials: they come from the platform's sealed copies only."""
    ids = {str(node.get("id")) for node in flows if isinstance(node, Mapping)}
    kept: dict[str, dict[str, Any]] = {}
    if parent is not None:
        kept = {node: dict(fields) for node, fields in snapshot_credentials(parent).items()}
    sent = _developer_credentials_open(developed) if developed is not None else {}
    for node, fields in sent.items():
        merged = kept.setdefault(node, {})
        for name, value in fields.items():
            if value == "":
                merged.pop(name, None)
            else:
                merged[name] = value
    return {node: fields for node, fields in kept.items() if node in ids and fields}


# --- credentials sent in developer mode -------------------------------------------------------


def _developer_credentials_open(row: DeveloperCredentials) -> dict[str, dict[str, str]]:
    """The plaintext of a ``DeveloperCredentials`` row. Internal only: never log, audit,
    render or answer it."""
    key = row.credentials_key
    if key.team_id != row.team_id:
        raise keys.KeyIntegrityError(f"developer credentials {row.pk} name another team's key")
    plaintext = keys.unseal(
        bytes(row.credentials_sealed),
        key=keys.data_key(key),
        team_id=row.team_id,
        purpose=DEVELOPER_CREDENTIALS_PURPOSE,
    )
    value: dict[str, dict[str, str]] = json.loads(plaintext)
    return value


def _developer_credentials_keep(
    device: Device, sent: Mapping[str, Mapping[str, str]], deployed: set[str]
) -> None:
    """Lay ``sent`` over the credentials kept for ``device`` (``__PWRD__`` keeps what is
    there) and forget those of nodes no longer ``deployed`` (the engine drops them too).
    Re-sealed with the team's active key. The caller holds the device's row lock."""
    row = (
        DeveloperCredentials.objects.select_related("credentials_key").filter(device=device).first()
    )
    kept = _developer_credentials_open(row) if row is not None else {}
    for node, fields in sent.items():
        merged = kept.setdefault(node, {})
        merged.update({name: v for name, v in fields.items() if v != KEEP_CREDENTIAL})
    kept = {node: fields for node, fields in kept.items() if node in deployed and fields}
    if not kept:
        if row is not None:
            row.delete()
        return
    team_key = keys.team_key(device.team)
    sealed = keys.seal(
        manifest.canonical_json(kept),
        key=keys.data_key(team_key),
        team_id=device.team_id,
        purpose=DEVELOPER_CREDENTIALS_PURPOSE,
    )
    if row is None:
        row = DeveloperCredentials(team_id=device.team_id, device=device)
    row.credentials_sealed = sealed
    row.credentials_key = team_key
    row.save()


def _seal_to_device(device: Device, credentials: Mapping[str, Mapping[str, str]]) -> str:
    """``credentials`` sealed to the device's X25519 key (only it opens them), as base64."""
    sealed = seal_to_device(device, credentials)
    if sealed is None:
        raise Conflict(
            f"Device {device.name!r} has no sealing key yet (not registered): it cannot "
            "receive credentials.",
            code="not_registered",
        )
    return base64.b64encode(sealed).decode("ascii")


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


@dataclass(frozen=True)
class DevFlows:
    """Flows a member sends in developer mode: the nodes without credentials, and the
    credentials taken out of them (``{node id: {field: text}}``)."""

    nodes: list[Any]
    credentials: dict[str, dict[str, str]]


def _credentials_problem(message: str) -> ValidationError:
    return ValidationError(message, fields={"flows": message}, code="invalid_credentials")


def _credential_field_problem(name: Any, value: Any) -> str | None:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_CREDENTIAL_NAME:
        return f"a credential field name is 1 to {MAX_CREDENTIAL_NAME} characters."
    if not isinstance(value, str):
        return f"credential {name[:64]!r} must be text."
    if len(value) > MAX_CREDENTIAL_VALUE:
        return f"credential {name[:64]!r} is over {MAX_CREDENTIAL_VALUE} characters."
    return None


def _split_credentials(flows: list[Any]) -> dict[str, dict[str, str]]:
    """The ``credentials`` of each node, checked: an object of field name -> text, within
    the limits above (400 ``invalid_credentials`` naming the node otherwise)."""
    found: dict[str, dict[str, str]] = {}
    for node in flows:
        if not isinstance(node, Mapping) or node.get("credentials") in (None, {}):
            continue
        node_id, fields = node.get("id"), node["credentials"]
        if not isinstance(node_id, str) or not node_id:
            raise _credentials_problem("A node with credentials needs a text id.")
        if not isinstance(fields, Mapping):
            raise _credentials_problem(
                f"Node {node_id[:64]}: credentials must be an object of field name to text."
            )
        if len(fields) > MAX_CREDENTIAL_FIELDS:
            raise _credentials_problem(
                f"Node {node_id[:64]}: {len(fields)} credential fields; at most "
                f"{MAX_CREDENTIAL_FIELDS}."
            )
        for name, value in fields.items():
            problem = _credential_field_problem(name, value)
            if problem is not None:
                raise _credentials_problem(f"Node {node_id[:64]}: {problem}")
        found[node_id] = dict(fields)
    if len(found) > MAX_CREDENTIAL_NODES:
        raise _credentials_problem(
            f"{len(found)} nodes carry credentials; at most {MAX_CREDENTIAL_NODES} per deploy."
        )
    size = len(manifest.canonical_json(found))
    if size > MAX_CREDENTIALS_BYTES:
        raise _credentials_problem(
            f"The credentials are {size} bytes; at most {MAX_CREDENTIALS_BYTES} per deploy."
        )
    return found


def clean_dev_flows(flows: Any) -> DevFlows:
    """Flows a member sends in developer mode: a flows.json array (or ``{"flows": [...]}``)
    that the platform's validator (the runner's own) accepts, nodes' ``credentials`` checked
    and taken out."""
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
    credentials = _split_credentials(flows)
    # The validator sees the credentials inline, as the engine will after the agent opens them.
    problems = flows_validate(flows)
    if not flows_valid(problems):
        raise FlowsRejected(problems)
    nodes = [
        {k: v for k, v in node.items() if k != "credentials"}
        if isinstance(node, Mapping) and "credentials" in node
        else node
        for node in flows
    ]
    return DevFlows(nodes, credentials)


def device_dev_deploy(*, principal: Principal, device: Device, flows: Any) -> dict[str, Any]:
    """Validate ``flows`` and deploy them on the device (a full deploy through its own
    deployer); audited as ``device.developer_mode.deployed`` (with the ids of the nodes that
    carried credentials, never their values). Credentials go sealed to the device's key (409
    ``not_registered`` without one); a node sent without them keeps what the device has, and
    ``__PWRD__`` keeps a stored field. Answers the engine's ``{"rev", "failures"?,
    "missing_types"?}``."""
    principal.require_writable("deploy flows in developer mode")
    device = _developing(principal, device)
    cleaned = clean_dev_flows(flows)
    body: dict[str, Any] = {"flows": cleaned.nodes}
    if cleaned.credentials:
        body["credentials_sealed"] = _seal_to_device(device, cleaned.credentials)
    answer = dev_call(device, "POST", "/flows", body)
    if answer.status != 200 or not isinstance(answer.body, Mapping):
        raise _device_error(answer, "deploy the flows")
    result = dict(answer.body)
    deployed = {str(node.get("id")) for node in cleaned.nodes if isinstance(node, Mapping)}
    with transaction.atomic():
        locked = _lock(device)
        if locked.developer_mode:  # a leave that came first already dropped them
            _developer_credentials_keep(locked, cleaned.credentials, deployed)
        audit_device(
            "device.developer_mode.deployed",
            principal,
            locked,
            {
                "nodes": len(cleaned.nodes),
                "rev": result.get("rev"),
                "failures": len(result.get("failures") or []),
                # Node ids only ("credentials" is a word the audit scrubber hides).
                "sealed_nodes": sorted(cleaned.credentials),
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
