"""The device link's messages: JSON text frames over one websocket, version 1.

Every frame is a JSON object with a ``type``. The table below is the whole vocabulary; the
platform and the agent decode with ``decode`` (size, JSON, type, required fields) and refuse
anything else with ``LinkError`` (the platform closes with ``CLOSE_MALFORMED``; the agent
logs and drops). docs/device-protocol.md describes each message and the sequences.
"""

from __future__ import annotations

import json
from typing import Any, Final

PROTOCOL_VERSION: Final = 1
LINK_PATH: Final = "/ws/devices/link/"
REGISTER_PATH: Final = "/api/v1/devices/register/"
# GET <BUNDLE_PATH>{generation}/{part} with the device credential; answers the part's bytes and
# honours ``Range: bytes=N-`` so an interrupted download resumes.
BUNDLE_PATH: Final = "/api/v1/devices/bundles/"

# Limits (family 13). A frame above MAX_FRAME_BYTES closes with 1009; a device sending more
# than RATE_BURST frames faster than RATE_PER_SECOND refills is closed with CLOSE_RATE.
MAX_FRAME_BYTES: Final = 256 * 1024
RATE_PER_SECOND: Final = 50.0
RATE_BURST: Final = 200
DEFAULT_HEARTBEAT_SECONDS: Final = 15.0
# The interval a device accepts from the platform, clamped: fast enough for tests and a lab
# bench, never a busy loop, never silent for more than an hour.
MIN_HEARTBEAT_SECONDS: Final = 0.2
MAX_HEARTBEAT_SECONDS: Final = 3600.0
# A stream batch carries at most this many items; the agent's ring buffer holds STREAM_BUFFER.
MAX_STREAM_ITEMS: Final = 200
STREAM_BUFFER: Final = 5000

# Close codes (RFC 6455 private range). Before accept a refused handshake is an HTTP 403.
CLOSE_MALFORMED: Final = 4400  # undecodable or out-of-protocol frame
CLOSE_UNAUTHORIZED: Final = 4401  # credential no longer valid (revoked while connected)
CLOSE_SUSPENDED: Final = 4403
CLOSE_REPLACED: Final = 4409  # the same device connected again; the older socket goes
CLOSE_DECOMMISSIONED: Final = 4410  # wipe credentials and stop
CLOSE_RATE: Final = 4429
CLOSE_TOO_BIG: Final = 1009
CLOSE_GOING_AWAY: Final = 1001

# Device -> platform
HELLO: Final = "hello"
HEARTBEAT: Final = "heartbeat"
APPLY_RESULT: Final = "apply_result"
STREAM: Final = "stream"
DEV_RESULT: Final = "dev_result"
# Platform -> device
WELCOME: Final = "welcome"
TARGET: Final = "target"
WATCH: Final = "watch"
SUSPEND: Final = "suspend"
RESUME: Final = "resume"
DECOMMISSION: Final = "decommission"
DEV_REQUEST: Final = "dev_request"
ERROR: Final = "error"

# type -> required fields and their JSON types
_REQUIRED: Final[dict[str, dict[str, tuple[type, ...]]]] = {
    HELLO: {"protocol": (int,), "agent_version": (str,)},
    HEARTBEAT: {"state": (str,)},
    APPLY_RESULT: {"snapshot": (str,), "generation": (int,), "outcome": (str,)},
    STREAM: {"items": (list,)},
    DEV_RESULT: {"request": (str,), "status": (int,)},
    WELCOME: {"protocol": (int,), "device": (dict,), "heartbeat_seconds": (int, float)},
    TARGET: {"target": (dict, type(None))},
    WATCH: {"on": (bool,)},
    SUSPEND: {},
    RESUME: {},
    DECOMMISSION: {},
    DEV_REQUEST: {"request": (str,), "method": (str,), "path": (str,)},
    ERROR: {"code": (str,), "message": (str,)},
}
DEVICE_TYPES: Final = frozenset({HELLO, HEARTBEAT, APPLY_RESULT, STREAM, DEV_RESULT})
PLATFORM_TYPES: Final = frozenset(_REQUIRED) - DEVICE_TYPES

# Device states a heartbeat reports.
STATES: Final = frozenset({"running", "updating", "safe", "stopped", "error", "suspended"})
# Outcomes of applying a target.
OUTCOMES: Final = frozenset({"applied", "failed", "rolled_back", "refused"})


class LinkError(ValueError):
    """A frame that is not a message of this protocol."""


def decode(raw: str | bytes, *, allowed: frozenset[str]) -> dict[str, Any]:
    """Parse one frame into a message of one of the ``allowed`` types, or raise ``LinkError``."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_FRAME_BYTES:
        raise LinkError(f"frame of {size} bytes exceeds the {MAX_FRAME_BYTES} byte limit")
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise LinkError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise LinkError("a message must be a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        raise LinkError(f"unexpected message type {kind!r}")
    for name, types in _REQUIRED[kind].items():
        value = message.get(name)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise LinkError(f"{kind}: field {name!r} is missing or has the wrong type")
    return message


def encode(message: dict[str, Any]) -> str:
    """One frame; refuses a type outside the protocol (a programming error)."""
    if message.get("type") not in _REQUIRED:
        raise ValueError(f"unknown message type {message.get('type')!r}")
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)


def heartbeat_interval(value: Any) -> float:
    """The heartbeat interval to use for ``value`` as the platform sent it: a number clamped to
    [MIN_HEARTBEAT_SECONDS, MAX_HEARTBEAT_SECONDS]; anything else (NaN, a bool, a string) gives
    the default."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return DEFAULT_HEARTBEAT_SECONDS
    return min(MAX_HEARTBEAT_SECONDS, max(MIN_HEARTBEAT_SECONDS, float(value)))
