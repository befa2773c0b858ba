"""Every write of the fleet (one transaction and one audit row each). Import from here; the
submodules are an implementation detail."""

from apps.devices.services.devices import (
    device_decommission,
    device_delete,
    device_group_add_devices,
    device_group_create,
    device_group_delete,
    device_group_remove_devices,
    device_group_update,
    device_resume,
    device_suspend,
    device_update,
    devices_delete,
    devices_resume,
    devices_suspend,
    devices_update,
)
from apps.devices.services.provisioning import (
    InvalidRegistrationToken,
    device_register,
    provisioning_token_create,
    provisioning_token_revoke,
    registration_code_create,
    registration_code_reissue,
    registration_signing_keys,
)

__all__ = [
    "InvalidRegistrationToken",
    "device_decommission",
    "device_delete",
    "device_group_add_devices",
    "device_group_create",
    "device_group_delete",
    "device_group_remove_devices",
    "device_group_update",
    "device_register",
    "device_resume",
    "device_suspend",
    "device_update",
    "devices_delete",
    "devices_resume",
    "devices_suspend",
    "devices_update",
    "provisioning_token_create",
    "provisioning_token_revoke",
    "registration_code_create",
    "registration_code_reissue",
    "registration_signing_keys",
]
