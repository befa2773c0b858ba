"""``subflow-status``: the receiver behind a subflow's status output (engine-internal).

The flow model creates one per subflow instance whose definition has a status output
(``<instance id>:status``); messages wired to that output set the instance node's status
badge, which status nodes of the parent flow then see like any other node's status.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, NodeStatus, register

MAX_TEXT = 32
_STATUS_KEYS = frozenset({"fill", "shape", "text"})


class Config(NodeConfig):
    pass


SPEC = NodeSpec(
    type="subflow-status",
    version=1,
    category=Category.COMMON,
    inputs=1,
    outputs=0,
    label="subflow status",
    internal=True,
    help="""Sets a subflow instance's status from its status output (created by the engine).

### Inputs
: payload (string | object) : a string becomes the status text; an object with `fill`,
  `shape` or `text` (or an empty object, which clears it) is the status; anything else is shown
  as text (32 characters at most).
: status (object) : used when there is no `payload`.
""",
)


def _inspect(value: Any) -> str:
    """Roughly what Node-RED's ``util.inspect`` shows for a payload."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and (value.is_integer() or not math.isfinite(value)):
        return str(int(value)) if value.is_integer() else str(value).replace("inf", "Infinity")
    if isinstance(value, (bytes, bytearray)):
        return "<Buffer " + " ".join(f"{b:02x}" for b in value[:50]) + ">"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def status_of(msg: Msg) -> NodeStatus | None:
    """The instance status a status-output message asks for (None: leave it)."""
    if "payload" in msg:
        payload = msg["payload"]
        if isinstance(payload, str):
            return NodeStatus(None, None, payload)
        if isinstance(payload, dict) and (not payload or _STATUS_KEYS & payload.keys()):
            return _from_dict(payload)
        text = _inspect(payload)
        return NodeStatus(None, None, text[:MAX_TEXT] + "..." if len(text) > MAX_TEXT else text)
    status = msg.get("status")
    if isinstance(status, dict):
        return _from_dict(status)
    return None


def _from_dict(data: dict[str, Any]) -> NodeStatus:
    text = data.get("text")
    return NodeStatus(
        data.get("fill") or None,
        data.get("shape") or None,
        "" if text is None else text if isinstance(text, str) else _inspect(text),
    )


@register
class SubflowStatus(Node):
    """Mirrors messages on a subflow's status output onto the instance's status badge."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def on_message(self, msg: Msg) -> None:
        status = status_of(msg)
        instance = self.rt.peer(self.rt.z)
        if status is not None and instance is not None:
            instance.status(status)
