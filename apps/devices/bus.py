"""How services reach a device's live link and the browsers watching a device.

The link consumer of a device joins ``device_group_name(id)``; services send it commands with
``tell_device`` (on commit, best effort: the link also re-reads the device row at every
heartbeat, so a lost message costs one heartbeat interval, never correctness). Browsers watching
a device's live debug join ``device_watch_group_name(id)``.
"""

from __future__ import annotations

from typing import Any, Final

from apps.core.realtime import send_group_on_commit

# Channel-layer handler names (``type`` with dots becomes the consumer method name).
LINK_COMMAND: Final = "device.command"  # DeviceLinkConsumer.device_command
WATCH_EVENT: Final = "device.watch_event"  # the browser consumer's handler
# What the link sends to a ``dev_request``'s ``reply_to`` channel: {"request", "status", "body"}.
DEV_REPLY: Final = "device.dev_reply"

# What a command can ask of a live link.
COMMANDS: Final = frozenset(
    {
        "push_target",  # the target changed: send it now
        "suspend",
        "resume",
        "decommission",  # send decommission, close 4410
        "revoked",  # the credential changed: close 4401
        "watch",  # {"watcher": channel name, "on": bool, "since": seq | None}
        "dev_request",  # {"request", "method", "path", "body", "reply_to": channel name}
        "recheck",  # re-read the device row (name, status, target)
    }
)


def device_group_name(device_id: int) -> str:
    return f"device-{int(device_id)}"


def device_watch_group_name(device_id: int) -> str:
    return f"device-{int(device_id)}-watch"


def device_command(command: str, **fields: Any) -> dict[str, Any]:
    """The channel-layer message of ``command`` (for a direct, not on-commit, group send)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown device command {command!r}")
    return {"type": LINK_COMMAND, "command": command, **fields}


def tell_device(device_id: int, command: str, **fields: Any) -> None:
    """Send ``command`` to the device's live link once the current transaction commits."""
    send_group_on_commit(device_group_name(device_id), device_command(command, **fields))
