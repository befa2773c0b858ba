"""How services reach a device's live link and the browsers watching a device.

A device's live link is one consumer; the device row names its channel
(``Device.link_channel``, written by the link after ``hello``). Services send it commands with
``tell_device``: the channel is read from the row and the command sent to it on commit, best
effort. The link re-reads the device row at every heartbeat, so a lost command costs one
heartbeat interval, never correctness. No channel-layer group per device: a fleet connecting
at once would pay two Redis round trips per socket to join one (RELIABILITY family 25).
Browsers watching a device's live debug join ``device_watch_group_name(id)``.
"""

from __future__ import annotations

from typing import Any, Final

from apps.core.realtime import send_channel_on_commit
from apps.devices.models import Device

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
        "replaced",  # {"channel": the newer link's}: another socket of the device took over
    }
)


def device_watch_group_name(device_id: int) -> str:
    return f"device-{int(device_id)}-watch"


def device_command(command: str, **fields: Any) -> dict[str, Any]:
    """The channel-layer message of ``command`` (for a direct, not on-commit, group send)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown device command {command!r}")
    return {"type": LINK_COMMAND, "command": command, **fields}


def link_channel(device_id: int) -> str:
    """The channel of the device's live link ("" without one)."""
    found = Device.objects.filter(pk=device_id).values_list("link_channel", flat=True).first()
    return found or ""


def tell_device(device_id: int, command: str, **fields: Any) -> None:
    """Send ``command`` to the device's live link once the current transaction commits (the
    link named by the row now: callers hold the row locked, and a deleted device's link is
    still told). Nothing without a live link."""
    channel = link_channel(device_id)
    if channel:
        send_channel_on_commit(channel, device_command(command, **fields))
