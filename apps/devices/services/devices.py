"""Writes of devices and device groups: update, suspend, resume, decommission, delete, in bulk.

Each service runs in one transaction, writes one audit row per device, tells the browsers
(``device.state.changed``, only to members who may read the device's application) and the
device's live link (``bus.tell_device``), both on commit. The bulk versions take devices the
view already resolved through ``access_device`` and change all of them or none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from django.db import transaction
from django.utils import timezone

from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.core.errors import Conflict, ValidationError
from apps.core.realtime import broadcast_team_event
from apps.devices import bus
from apps.devices.auth import retired_credential_marker
from apps.devices.models import Device, DeviceGroup, DeviceStatus
from apps.teams.models import Application, Team

if TYPE_CHECKING:
    from apps.devices.services.targets import EnvReissue

MAX_TAGS: Final = 20
MAX_ENV: Final = 100
MAX_ENV_VALUE: Final = 4096
TAG: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,49}$")
ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
STATE_EVENT: Final = "device.state.changed"
_UNSET: Any = object()


# --- input rules shared by every device write ------------------------------------------------


def clean_name(value: object, field: str = "name") -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not 1 <= len(text) <= 100:
        raise ValidationError(
            f"The {field} must be 1 to 100 characters.",
            fields={field: "Enter 1 to 100 characters."},
        )
    return text


def clean_tags(value: object, field: str = "tags") -> list[str]:
    """Distinct tags in the order given: letters, digits and ``_.:/-``, 1 to 50 characters."""
    if not isinstance(value, list | tuple) or len(value) > MAX_TAGS:
        raise ValidationError(
            f"Tags must be a list of at most {MAX_TAGS}.", fields={field: "A list of tags."}
        )
    tags: list[str] = []
    for tag in value:
        if not isinstance(tag, str) or not TAG.match(tag):
            raise ValidationError(
                f"Invalid tag {str(tag)[:60]!r}: letters, digits and _.:/- (1 to 50, starting "
                "with a letter or digit).",
                fields={field: "Invalid tag."},
            )
        if tag not in tags:
            tags.append(tag)
    return tags


def clean_env(value: object, field: str = "env") -> dict[str, str]:
    """Env vars: names like shell variables, string values of at most 4096 characters."""
    if not isinstance(value, dict) or len(value) > MAX_ENV:
        raise ValidationError(
            f"Env must be an object of at most {MAX_ENV} variables.",
            fields={field: "An object of NAME: value."},
        )
    for name, text in value.items():
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise ValidationError(
                f"Invalid env var name {str(name)[:60]!r}.", fields={field: "Invalid name."}
            )
        if not isinstance(text, str) or len(text) > MAX_ENV_VALUE:
            raise ValidationError(
                f"The value of {name} must be text of at most {MAX_ENV_VALUE} characters.",
                fields={field: "Invalid value."},
            )
    return dict(value)


def require_same_team(team: Team, application: Application | None, groups: Iterable[Any]) -> None:
    """A last guard under the views' ``access_*``: relations never cross teams."""
    if application is not None and application.team_id != team.pk:
        raise ValidationError(
            "Unknown application.", fields={"application": "No such application."}
        )
    if any(group.team_id != team.pk for group in groups):
        raise ValidationError("Unknown device group.", fields={"groups": "No such group."})


# --- what the browsers and the audit rows see -------------------------------------------------


def _snapshot_ref(target: Any) -> dict[str, Any] | None:
    if target is None:
        return None
    return {"id": target.snapshot_id, "name": target.snapshot.name}


def state_payload(device: Device) -> dict[str, Any]:
    """The ``device.state.changed`` payload (docs: id, name, status, last_seen, snapshots)."""
    return {
        "id": device.pk,
        "name": device.name,
        "status": device.status,
        "last_seen": device.last_seen,
        "active_snapshot": _snapshot_ref(device.active_target),
        "target_snapshot": _snapshot_ref(device.target),
    }


def announce(device: Device) -> None:
    """Tell the team's browsers (those who may read the device) that it changed, on commit."""
    broadcast_team_event(
        device.team_id,
        STATE_EVENT,
        state_payload(device),
        permission="device:read",
        application_id=device.application_id,
    )


def device_record(device: Device) -> dict[str, Any]:
    """What an audit row keeps of a device."""
    return {
        "name": device.name,
        "status": device.status,
        "application": device.application.slug if device.application else None,
        "groups": sorted(group.name for group in device.groups.all()),
        "tags": list(device.tags),
        "env": sorted(device.env),
    }


def _audit(
    event: str, principal: Principal, device: Device, before: Any = None, after: Any = None
) -> None:
    audit_record(
        event=event,
        principal=principal,
        team=device.team,
        application=device.application,
        target=device,
        before=before,
        after=after,
    )


def _lock(device: Device) -> Device:
    """The device row, locked for the rest of the transaction, with what writes need."""
    return (
        Device.objects.select_for_update(of=("self",))
        .select_related("team", "application", "active_target__snapshot", "target__snapshot")
        .get(pk=device.pk)
    )


def _require_live(device: Device, what: str) -> None:
    if device.decommissioned_at is not None:
        raise Conflict(f"Device {device.name!r} is decommissioned: it cannot be {what}.")


# --- one device -------------------------------------------------------------------------------


def device_update(
    *,
    principal: Principal,
    device: Device,
    name: Any = _UNSET,
    tags: Any = _UNSET,
    env: Any = _UNSET,
    application: Any = _UNSET,
    groups: Any = _UNSET,
) -> Device:
    """Change a device's name, tags, env, application or groups (only what is given).

    ``application`` is an Application of the device's team or None; ``groups`` a list of its
    DeviceGroups (replacing the current ones). Audited as ``device.device.updated``. When its
    env (own or groups') changed, its target is re-issued (``reissue_for_env``).
    """
    principal.require_writable("change devices")
    with transaction.atomic():
        device = _lock(device)
        before = device_record(device)
        old_env = dict(device.env)
        old_application = device.application
        if name is not _UNSET:
            device.name = clean_name(name)
        if tags is not _UNSET:
            device.tags = clean_tags(tags)
        if env is not _UNSET:
            device.env = clean_env(env)
        if application is not _UNSET:
            require_same_team(device.team, application, ())
            device.application = application
        device.save()
        if groups is not _UNSET:
            require_same_team(device.team, None, groups)
            device.groups.set(list(groups))
        after = device_record(device)
        if after == before and old_env == device.env:
            return device
        _audit("device.device.updated", principal, device, before, after)
        if old_env != device.env or groups is not _UNSET:
            for target in reissue_for_env(principal, [device.pk]).targets:
                device.target = target
        if old_application is not None and old_application != device.application:
            # Members shut out of the new application still see it leave the old one.
            broadcast_team_event(
                device.team_id,
                STATE_EVENT,
                state_payload(device),
                permission="device:read",
                application_id=old_application.pk,
            )
        announce(device)
        bus.tell_device(device.pk, "recheck")
    return device


def _set_suspended(principal: Principal, device: Device, suspended: bool) -> Device:
    verb = "suspended" if suspended else "resumed"
    principal.require_writable(f"change whether devices are {verb}")
    with transaction.atomic():
        device = _lock(device)
        _require_live(device, verb)
        if device.suspended == suspended:
            return device
        before = device.status
        device.suspended = suspended
        if suspended:
            device.status = DeviceStatus.SUSPENDED
        else:
            # The link reports it online again at its next heartbeat.
            unregistered = device.registered_at is None
            device.status = DeviceStatus.PENDING if unregistered else DeviceStatus.OFFLINE
        device.save(update_fields=["suspended", "status", "updated_at"])
        _audit(
            f"device.device.{verb}",
            principal,
            device,
            {"status": before},
            {"status": device.status},
        )
        announce(device)
        bus.tell_device(device.pk, "suspend" if suspended else "resume")
    return device


def device_suspend(*, principal: Principal, device: Device) -> Device:
    """Keep it running, send it no target and no dev request (``device.device.suspended``)."""
    return _set_suspended(principal, device, True)


def device_resume(*, principal: Principal, device: Device) -> Device:
    """Take targets again (``device.device.resumed``)."""
    return _set_suspended(principal, device, False)


def _decommission_locked(principal: Principal, device: Device) -> None:
    before = device.status
    if device.credential_hash:
        device.credential_hash = retired_credential_marker(device.credential_hash)
    device.registration_code_hash = None
    device.registration_code_expires_at = None
    device.decommissioned_at = timezone.now()
    device.status = DeviceStatus.DECOMMISSIONED
    device.save(
        update_fields=[
            "credential_hash",
            "registration_code_hash",
            "registration_code_expires_at",
            "decommissioned_at",
            "status",
            "updated_at",
        ]
    )
    _audit("device.device.decommissioned", principal, device, {"status": before})
    bus.tell_device(device.pk, "decommission")


def device_decommission(*, principal: Principal, device: Device) -> Device:
    """The credential stops working at once; a live link is told to wipe and closes
    (``device.device.decommissioned``). The row stays, for its history."""
    principal.require_writable("decommission devices")
    with transaction.atomic():
        device = _lock(device)
        _require_live(device, "decommissioned again")
        _decommission_locked(principal, device)
        announce(device)
    return device


def device_delete(*, principal: Principal, device: Device) -> None:
    """Decommission (if not yet) and remove the row; the audit rows keep its story
    (``device.device.deleted``)."""
    principal.require_writable("delete devices")
    with transaction.atomic():
        device = _lock(device)
        if device.decommissioned_at is None:
            _decommission_locked(principal, device)
        _audit("device.device.deleted", principal, device, device_record(device))
        announce(device)
        device.delete()


# --- many devices: all or nothing -----------------------------------------------------------


def devices_update(
    *,
    principal: Principal,
    devices: Sequence[Device],
    application: Any = _UNSET,
    add_tags: Sequence[str] = (),
    remove_tags: Sequence[str] = (),
) -> list[Device]:
    """Move devices to an application (or None) and/or add and remove tags, in one transaction."""
    add = clean_tags(list(add_tags))
    remove = set(clean_tags(list(remove_tags)))
    changed = []
    with transaction.atomic():
        for device in devices:
            tags = [tag for tag in device.tags if tag not in remove]
            tags += [tag for tag in add if tag not in tags]
            if len(tags) > MAX_TAGS:
                raise ValidationError(
                    f"Device {device.name!r} would have more than {MAX_TAGS} tags.",
                    fields={"tags": "Too many tags."},
                )
            kwargs: dict[str, Any] = {"tags": tags}
            if application is not _UNSET:
                kwargs["application"] = application
            changed.append(device_update(principal=principal, device=device, **kwargs))
    return changed


def devices_suspend(*, principal: Principal, devices: Sequence[Device]) -> list[Device]:
    with transaction.atomic():
        return [device_suspend(principal=principal, device=device) for device in devices]


def devices_resume(*, principal: Principal, devices: Sequence[Device]) -> list[Device]:
    with transaction.atomic():
        return [device_resume(principal=principal, device=device) for device in devices]


def devices_delete(*, principal: Principal, devices: Sequence[Device]) -> None:
    with transaction.atomic():
        for device in devices:
            device_delete(principal=principal, device=device)


def reissue_for_env(principal: Principal, device_ids: Iterable[int]) -> EnvReissue:
    """Re-issue the targets of the devices whose env an edit changed (``targets.env_reissue``,
    in the caller's transaction)."""
    # Imported here: the targets module reaches this one through the link services.
    from apps.devices.services.targets import env_reissue

    return env_reissue(principal, device_ids)


# --- device groups --------------------------------------------------------------------------


def _group_record(group: DeviceGroup) -> dict[str, Any]:
    return {"name": group.name, "description": group.description, "env": sorted(group.env)}


def _clean_description(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > 2000:
        raise ValidationError(
            "The description is too long.", fields={"description": "At most 2000 characters."}
        )
    return text


def _require_unique_group_name(team: Team, name: str, exclude: int | None = None) -> None:
    same_name = DeviceGroup.objects.filter(team=team, name=name)
    if exclude is not None:
        same_name = same_name.exclude(pk=exclude)
    if same_name.exists():
        raise ValidationError(
            f"A device group named {name!r} already exists.",
            fields={"name": "This name is already taken."},
            code="duplicate",
        )


def device_group_create(
    *, principal: Principal, team: Team, name: str, description: str = "", env: Any = None
) -> DeviceGroup:
    principal.require_writable("create device groups")
    name = clean_name(name)
    group = DeviceGroup(
        team=team,
        name=name,
        description=_clean_description(description),
        env=clean_env(env if env is not None else {}),
    )
    with transaction.atomic():
        _require_unique_group_name(team, name)
        group.save()
        audit_record(
            event="device.group.created",
            principal=principal,
            team=team,
            target=group,
            after=_group_record(group),
        )
    return group


def device_group_update(
    *,
    principal: Principal,
    group: DeviceGroup,
    name: Any = _UNSET,
    description: Any = _UNSET,
    env: Any = _UNSET,
) -> DeviceGroup:
    """Rename or change a group; members whose env changed are told to re-check."""
    principal.require_writable("change device groups")
    with transaction.atomic():
        # NO KEY UPDATE: a device joining the group meanwhile (KEY SHARE on this row) is not
        # blocked while this edit waits for that device's lock to re-issue its target.
        group = (
            DeviceGroup.objects.select_for_update(no_key=True)
            .select_related("team")
            .get(pk=group.pk)
        )
        before = _group_record(group)
        old_env = dict(group.env)
        if name is not _UNSET:
            group.name = clean_name(name)
            _require_unique_group_name(group.team, group.name, exclude=group.pk)
        if description is not _UNSET:
            group.description = _clean_description(description)
        if env is not _UNSET:
            group.env = clean_env(env)
        group.save()
        after = _group_record(group)
        if after != before or old_env != group.env:
            audit_record(
                event="device.group.updated",
                principal=principal,
                team=group.team,
                target=group,
                before=before,
                after=after,
            )
        if old_env != group.env:
            members = list(group.devices.values_list("pk", flat=True))
            reissue_for_env(principal, members)
            for device_id in members:
                bus.tell_device(device_id, "recheck")
    return group


def device_group_delete(*, principal: Principal, group: DeviceGroup) -> None:
    principal.require_writable("delete device groups")
    with transaction.atomic():
        members = list(group.devices.values_list("pk", flat=True))
        audit_record(
            event="device.group.deleted",
            principal=principal,
            team=group.team,
            target=group,
            before=_group_record(group) | {"devices": len(members)},
        )
        group.delete()
        if group.env:
            reissue_for_env(principal, members)
            for device_id in members:
                bus.tell_device(device_id, "recheck")


def device_group_add_devices(
    *, principal: Principal, group: DeviceGroup, devices: Sequence[Device]
) -> list[Device]:
    """Put devices into ``group`` (all or none); each change is a ``device_update``."""
    with transaction.atomic():
        return [
            device_update(principal=principal, device=device, groups=[*device.groups.all(), group])
            for device in devices
            if not device.groups.filter(pk=group.pk).exists()
        ]


def device_group_remove_devices(
    *, principal: Principal, group: DeviceGroup, devices: Sequence[Device]
) -> list[Device]:
    """Take devices out of ``group`` (all or none); each change is a ``device_update``."""
    with transaction.atomic():
        return [
            device_update(
                principal=principal,
                device=device,
                groups=[other for other in device.groups.all() if other.pk != group.pk],
            )
            for device in devices
        ]
