"""Reads of the fleet; always filtered to one team, and to the applications the reader may see.

A member shut out of an application ("no access", or an override role without the key) sees
none of its devices, tokens or events; devices without an application follow the team role.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import Count, Prefetch, Q, QuerySet

from apps.devices.models import Device, DeviceGroup, DeviceStatus, ProvisioningToken
from apps.teams.access import TeamAccess
from apps.teams.models import Application


def applications_without(access: TeamAccess, permission: str) -> list[int]:
    """Ids of the team's applications in which the member does not hold ``permission``."""
    ids = Application.objects.filter(team=access.team).values_list("pk", flat=True)
    return [pk for pk in ids if not access.may_see(permission, pk)]


def _visible(access: TeamAccess, permission: str) -> Q:
    return ~Q(application_id__in=applications_without(access, permission))


def device_queryset() -> QuerySet[Device]:
    """Devices with everything their API object shows, in a fixed number of queries."""
    return Device.objects.select_related(
        "team", "application", "active_target__snapshot", "target__snapshot"
    ).prefetch_related(Prefetch("groups", queryset=DeviceGroup.objects.order_by("name", "id")))


def devices_for(
    access: TeamAccess,
    *,
    permission: str = "device:read",
    application: Application | None = None,
    group: DeviceGroup | None = None,
    tag: str | None = None,
    status: str | None = None,
    text: str | None = None,
) -> QuerySet[Device]:
    """The team's devices the member may see (``permission``), narrowed by the filters.

    ``application`` and ``group`` are objects of the team already resolved through access.
    """
    devices = device_queryset().filter(team=access.team).filter(_visible(access, permission))
    if application is not None:
        devices = devices.filter(application=application)
    if group is not None:
        devices = devices.filter(groups=group)
    if status:
        devices = devices.filter(status=status)
    if text:
        devices = devices.filter(Q(name__icontains=text) | Q(hostname__icontains=text))
    if tag:
        # JSON containment is not on SQLite; tags are few per device, so match the text first
        # and keep the rows whose list holds the tag exactly.
        candidates = devices.filter(tags__icontains=f'"{tag}"').values_list("pk", "tags")
        devices = devices.filter(pk__in=[pk for pk, tags in candidates if tag in tags])
    return devices.order_by("name", "id")


def device_get(access: TeamAccess, device_id: int) -> Device | None:
    """One device of the team (any application; access decides what may be done with it)."""
    return device_queryset().filter(team=access.team, pk=device_id).first()


def device_statuses() -> list[str]:
    return list(DeviceStatus.values)


@dataclass(frozen=True)
class EnvSource:
    """One variable as the device runs it, and where the value comes from."""

    name: str
    value: str
    source: str  # "snapshot", the group's name or "device"
    group: DeviceGroup | None  # None when the snapshot's or the device's own value wins
    overrides: tuple[str, ...]  # the sources whose value this one replaced, in order


def device_env_sources(
    device: Device, snapshot_env: Mapping[str, str] | None = None
) -> list[EnvSource]:
    """The env vars a device runs with, by name: its snapshot's (``snapshot_env``, when given)
    overlaid with its groups' (by group name; a later name wins a clash) overlaid with its own
    (the device wins), each with its source. What its target's settings part carries."""
    found: dict[str, EnvSource] = {}

    def overlay(env: dict[str, str], source: str, group: DeviceGroup | None) -> None:
        for name, value in env.items():
            before = found.get(name)
            replaced = (*before.overrides, before.source) if before is not None else ()
            found[name] = EnvSource(name, value, source, group, replaced)

    overlay(dict(snapshot_env or {}), "snapshot", None)
    for group in device.groups.order_by("name", "id"):
        overlay(group.env, group.name, group)
    overlay(device.env, "device", None)
    return [found[name] for name in sorted(found)]


def device_effective_env(
    device: Device, snapshot_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The env vars a device runs with (``device_env_sources`` without the sources)."""
    return {entry.name: entry.value for entry in device_env_sources(device, snapshot_env)}


def device_group_list(access: TeamAccess) -> QuerySet[DeviceGroup]:
    return DeviceGroup.objects.filter(team=access.team).order_by("name", "id")


def device_group_get(access: TeamAccess, group_id: int) -> DeviceGroup | None:
    return DeviceGroup.objects.filter(team=access.team, pk=group_id).first()


def provisioning_token_list(access: TeamAccess) -> QuerySet[ProvisioningToken]:
    """The team's provisioning tokens (revoked ones too), hiding those of applications whose
    devices the member may not see."""
    hidden = applications_without(access, "device:read")
    return (
        ProvisioningToken.objects.filter(team=access.team)
        .exclude(application_id__in=hidden)
        .select_related("application", "group", "created_by")
        .order_by("-created_at", "-id")
    )


def provisioning_token_get(access: TeamAccess, token_id: int) -> ProvisioningToken | None:
    return (
        ProvisioningToken.objects.filter(team=access.team, pk=token_id)
        .select_related("team", "application", "group", "created_by")
        .first()
    )


def device_groups_with_counts(access: TeamAccess) -> QuerySet[DeviceGroup]:
    """The team's groups, each with ``device_count``: its devices the member may see."""
    hidden = applications_without(access, "device:read")
    return device_group_list(access).annotate(
        device_count=Count("devices", filter=~Q(devices__application_id__in=hidden))
    )
