"""Issuing targets: "device D should run snapshot S", signed for D with a fresh generation.

A target's bundle is the snapshot's parts (``snapshot_parts``) plus, when the snapshot has
credentials, ``credentials.sealed``: the plaintext credentials sealed to the device's own
X25519 key (only that device can open them). The env of its ``settings.json`` is the device's
(``device_env``: the snapshot's, overlaid with its groups', overlaid with its own), stored with
the target as signed. The signed envelope lists every part's SHA-256; ``apps.devices.bundles``
serves the same bytes. Issuing supersedes the device's pending target and pushes the new one to
the live link at once (the heartbeat heals a lost push). An edit that changes a device's env
re-issues its target (``env_reissue``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from django.db import transaction
from django.db.models import QuerySet

from apps.accounts.principal import Principal
from apps.core.errors import Conflict, NotFound, ValidationError
from apps.core.ids import parse_id
from apps.devices.bus import tell_device
from apps.devices.models import Device, DeviceTarget, TargetOutcome
from apps.devices.selectors import device_effective_env
from apps.devices.services.link import announce_state, audit_device
from apps.snapshots.artifacts import open_verified
from apps.snapshots.models import Snapshot
from apps.snapshots.services import (
    next_generation,
    sign_target,
    snapshot_credentials,
    snapshot_models,
    snapshot_parts,
)
from apps.teams.access import TeamAccess, require_team_permission
from apps.teams.models import Application
from edge_runner.protocol import manifest

DEPLOY_PERMISSION = "flow:deploy"


def target_snapshot_of(
    access: TeamAccess, application: Application | None, raw_id: Any
) -> Snapshot:
    """The snapshot a request names, if it is one of this team's ``application``'s (404 alike
    for missing, another team's and another application's)."""
    pk = parse_id(raw_id)
    snapshot = (
        Snapshot.objects.filter(pk=pk, team=access.team, application=application).first()
        if pk is not None and application is not None
        else None
    )
    if snapshot is None:
        raise NotFound("Snapshot not found.")
    return snapshot


def seal_to_device(device: Device, credentials: Mapping[str, Any]) -> bytes | None:
    """``credentials`` sealed to the device's own X25519 key (only it opens them); None for a
    device without one yet (not registered)."""
    if not device.sealing_public_key:
        return None
    return manifest.seal(
        manifest.canonical_json(credentials),
        recipient_public_key=bytes(device.sealing_public_key),
        device=str(device.pk),
    )


def issue_target(principal: Principal, device: Device, snapshot: Snapshot) -> DeviceTarget:
    """Issue ``snapshot`` to ``device`` (locked by the caller, inside its transaction); the
    one path of every target. A device in developer mode takes none (409 ``developer_mode``):
    leaving developer mode clears the flag before it issues its own."""
    if device.decommissioned_at is not None:
        raise ValidationError("This device is decommissioned.", code="decommissioned")
    if device.developer_mode:
        raise Conflict(
            f"Device {device.name!r} is in developer mode: leave developer mode first (keep "
            "the changes as a snapshot or revert to its target).",
            code="developer_mode",
        )
    if device.application_id is None or snapshot.application_id != device.application_id:
        raise NotFound("Snapshot not found.")
    if snapshot.team_id != device.team_id:
        raise NotFound("Snapshot not found.")
    generation = next_generation(device.team)
    parts = dict(snapshot_parts(snapshot, env=device_env(device, snapshot)))
    credentials = snapshot_credentials(snapshot)
    sealed = b""
    if credentials:
        found = seal_to_device(device, credentials)
        if found is None:
            raise ValidationError(
                "This device has no sealing key yet (not registered): it cannot receive "
                "credentials.",
                code="not_registered",
            )
        sealed = parts[manifest.CREDENTIALS_PART] = found
    envelope = sign_target(
        team=device.team,
        device_id=str(device.pk),
        snapshot=snapshot,
        generation=generation,
        parts_table={
            **manifest.build_parts(parts),
            **{
                name: {"sha256": artifact.sha256, "size": artifact.size}
                for name, artifact in snapshot_models(snapshot).items()
            },
        },
    )
    DeviceTarget.objects.filter(device=device, outcome=TargetOutcome.PENDING).update(
        outcome=TargetOutcome.SUPERSEDED
    )
    target = DeviceTarget.objects.create(
        team_id=device.team_id,
        device=device,
        snapshot=snapshot,
        generation=generation,
        envelope=json.loads(json.dumps(envelope)),
        digest=manifest.sha256_hex(manifest.canonical_json(envelope["manifest"])),
        credentials_sealed=sealed,
        settings_part=parts[manifest.SETTINGS_PART],
        issued_by=principal.label,
    )
    device.target = target
    device.save(update_fields=["target", "updated_at"])
    audit_device(
        "device.target.set",
        principal,
        device,
        {"snapshot": snapshot.pk, "name": snapshot.name, "generation": generation},
    )
    announce_state(device)
    tell_device(device.pk, "push_target")
    return target


def device_env(device: Device, snapshot: Snapshot) -> dict[str, str]:
    """The env vars ``device`` runs ``snapshot`` with: the snapshot's, overlaid with its
    groups' (by group name, a later name wins a clash), overlaid with its own (the device
    wins). The device page's env card shows the same (``device_env_sources``)."""
    return device_effective_env(device, snapshot.env)


def target_env(target: DeviceTarget) -> dict[str, Any]:
    """The env vars ``target`` was signed with (what the device receives)."""
    body = bundle_part_bytes(target, manifest.SETTINGS_PART) or b"{}"
    env = json.loads(body).get("env")
    return dict(env) if isinstance(env, dict) else {}


@dataclass(frozen=True)
class EnvReissue:
    """What an env edit did to the devices it touches: a new target per device whose env
    changed, and the devices in developer mode left alone (leaving issues their target)."""

    targets: list[DeviceTarget]
    skipped: list[Device]


def env_reissue(principal: Principal, device_ids: Iterable[int]) -> EnvReissue:
    """Inside the transaction of an edit of device or group env (or of group membership):
    re-issue the current target (same snapshot, new generation) of each of these registered,
    live devices whose env (``device_env``) is no longer the one its target was signed with.
    Devices in developer mode are skipped; a target of another application (the device moved)
    is left to the next deploy."""
    devices = _live_devices(pk__in=list(device_ids), target__isnull=False)
    targets: list[DeviceTarget] = []
    skipped: list[Device] = []
    for device in devices:
        current = device.target
        if current is None or current.snapshot.application_id != device.application_id:
            continue
        snapshot = current.snapshot
        if device_env(device, snapshot) == target_env(current):
            continue
        if device.developer_mode:
            skipped.append(device)
        else:
            targets.append(issue_target(principal, device, snapshot))
    return EnvReissue(targets, skipped)


def env_waiting(devices: Iterable[Device]) -> list[Device]:
    """Of ``devices``, those in developer mode whose target carries other env vars than theirs
    now: an env edit skipped them; leaving developer mode issues their target with these."""
    return [
        device
        for device in devices
        if device.developer_mode
        and device.decommissioned_at is None
        and device.target is not None
        and target_env(device.target) != device_env(device, device.target.snapshot)
    ]


def _live_devices(**filters: Any) -> QuerySet[Device]:
    """The registered, live devices matching ``filters``, locked for the caller's transaction
    (in id order, so two writers never lock them crosswise)."""
    return (
        Device.objects.select_for_update(of=("self",))
        .select_related("team", "application", "target__snapshot")
        .filter(decommissioned_at__isnull=True, registered_at__isnull=False, **filters)
        .order_by("pk")
    )


def issue_first_target(device: Device, snapshot: Snapshot) -> DeviceTarget:
    """At registration, the target the provisioning token names (chosen by whoever made the
    token, who needed ``device:manage``; issued in the registration's transaction)."""
    return issue_target(Principal.system("device provisioning"), device, snapshot)


def device_set_target(*, principal: Principal, device: Device, snapshot: Snapshot) -> DeviceTarget:
    """Make ``snapshot`` the device's target (``flow:deploy`` on its application)."""
    principal.require_writable("deploy snapshots")
    with transaction.atomic():
        locked = (
            Device.objects.select_for_update(of=("self",))
            .select_related("team", "application")
            .filter(pk=device.pk)
            .first()
        )
        if locked is None:
            raise NotFound("Device not found.")
        access = require_team_permission(principal, locked.team, DEPLOY_PERMISSION)
        access.require(DEPLOY_PERMISSION, locked.application)
        return issue_target(principal, locked, snapshot)


@dataclass(frozen=True)
class ApplicationDeployment:
    """What an application deploy did: a target per device, and the devices it left alone
    because they are in developer mode (a member is editing them live)."""

    targets: list[DeviceTarget]
    skipped: list[Device]


def application_set_target(
    *, principal: Principal, application: Application, snapshot: Snapshot
) -> ApplicationDeployment:
    """Make ``snapshot`` the target of every device of ``application`` (one transaction).
    Devices in developer mode keep theirs (listed as skipped); when every device is in
    developer mode the deploy is refused (409 ``developer_mode``)."""
    principal.require_writable("deploy snapshots")
    if snapshot.application_id != application.pk or snapshot.team_id != application.team_id:
        raise NotFound("Snapshot not found.")
    with transaction.atomic():
        access = require_team_permission(principal, application.team, DEPLOY_PERMISSION)
        access.require(DEPLOY_PERMISSION, application)
        devices = _live_devices(team_id=application.team_id, application=application)
        targets: list[DeviceTarget] = []
        skipped: list[Device] = []
        for device in devices:
            if device.developer_mode:
                skipped.append(device)
            else:
                targets.append(issue_target(principal, device, snapshot))
        if skipped and not targets:
            names = ", ".join(device.name for device in skipped[:5])
            raise Conflict(
                f"Every device of this application is in developer mode ({names}): leave "
                "developer mode first.",
                code="developer_mode",
            )
        return ApplicationDeployment(targets, skipped)


def device_bundle_part(device: Device, generation: int, name: str) -> bytes | None:
    """The bytes of part ``name`` of ``device``'s target ``generation`` (None: no such part,
    or another device's target). Refuses bytes that no longer match the signed manifest."""
    target = (
        DeviceTarget.objects.select_related("snapshot")
        .filter(device=device, generation=generation)
        .first()
    )
    if target is None:
        return None
    listed = target.envelope.get("manifest", {}).get("parts", {}).get(name)
    if not isinstance(listed, dict):
        return None
    body = bundle_part_bytes(target, name)
    if body is None or manifest.sha256_hex(body) != listed.get("sha256"):
        return None
    return body


def device_bundle_model(device: Device, generation: int, name: str) -> IO[bytes] | None:
    """The model part ``name`` of ``device``'s target ``generation`` as an open file (None: no
    such part, another device's target, or a stored file that lost its size). The device
    checks the SHA-256 of every part it receives."""
    target = (
        DeviceTarget.objects.select_related("snapshot")
        .filter(device=device, generation=generation)
        .first()
    )
    if target is None:
        return None
    listed = target.envelope.get("manifest", {}).get("parts", {}).get(name)
    if not isinstance(listed, dict):
        return None
    artifact = snapshot_models(target.snapshot).get(name)
    if artifact is None or artifact.sha256 != listed.get("sha256"):
        return None
    return open_verified(artifact)


def bundle_part_bytes(target: DeviceTarget, name: str) -> bytes | None:
    """The stored bytes of part ``name`` of ``target`` (a later env edit never changes them)."""
    if name == manifest.CREDENTIALS_PART:
        return bytes(target.credentials_sealed) or None
    if name == manifest.SETTINGS_PART and target.settings_part:
        return bytes(target.settings_part)
    return snapshot_parts(target.snapshot).get(name)
