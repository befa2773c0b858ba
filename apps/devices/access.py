"""Ids become fleet objects only here, with the permission check.

Missing, foreign-team and hidden-application objects answer the same 404; an object the member
can see but may not act on answers 403.
"""

from __future__ import annotations

from apps.core.errors import NotFound
from apps.core.ids import parse_id
from apps.devices import selectors
from apps.devices.models import Device, DeviceGroup, ProvisioningToken
from apps.rbac.permissions import NO_ACCESS
from apps.teams.access import TeamAccess


def access_device(access: TeamAccess, device_id: object, permission: str) -> Device:
    """A device of the accessed team; 404 also when its application is hidden from the member
    or the member may not even read devices there."""
    pk = parse_id(device_id)
    device = selectors.device_get(access, pk) if pk is not None else None
    if device is None:
        raise NotFound("Device not found.")
    application = device.application
    if application is not None and (
        access.application_role(application) == NO_ACCESS
        or not access.allows("device:read", application)
    ):
        raise NotFound("Device not found.")
    access.require(permission, application)
    return device


def access_device_group(access: TeamAccess, group_id: object, permission: str) -> DeviceGroup:
    access.require(permission)
    pk = parse_id(group_id)
    group = selectors.device_group_get(access, pk) if pk is not None else None
    if group is None:
        raise NotFound("Device group not found.")
    return group


def access_provisioning_token(
    access: TeamAccess, token_id: object, permission: str
) -> ProvisioningToken:
    pk = parse_id(token_id)
    token = selectors.provisioning_token_get(access, pk) if pk is not None else None
    if token is None:
        raise NotFound("Provisioning token not found.")
    application = token.application
    if application is not None and not access.allows("device:read", application):
        raise NotFound("Provisioning token not found.")
    access.require(permission, application)
    return token
