"""``debug``: show messages in the editor's debug sidebar, the runner log and the node status.

Sidebar items are encoded exactly like Node-RED's ``RED.util.encodeObject`` (see
ENGINE_CONTRACT.md §3) so that Node-RED tooling and our drivers read them unchanged.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, ClassVar, Literal, cast

from pydantic import field_validator

from edge_runner.contract import (
    Category,
    Fill,
    Msg,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    get_property,
    register,
)
from edge_runner.lib.js import JsError

log = logging.getLogger("edge_runner.debug")

# Node-RED's ``debugMaxLength`` default: longer strings and arrays are cut in the sidebar.
MAX_LENGTH = 1000
STATUS_MAX = 32


class _Undefined:
    """JavaScript ``undefined``: a property that is not there (distinct from ``None``/null)."""

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()

_INTERNAL = {"__enc__": True, "type": "internal"}
_FUNCTION = {"__enc__": True, "type": "function"}


def js_number(value: float | int) -> str:
    """``String(n)`` in JavaScript: integers without ``.0``, NaN/Infinity spelled like JS."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _walk(value: Any, max_length: int) -> Any:
    """The JSON replacer of ``encodeObject``: make ``value`` JSON-safe with ``__enc__`` markers."""
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str:
        return value if len(value) <= max_length else value[:max_length] + "..."
    if kind is int:
        return value
    if kind is float:
        if math.isnan(value) or math.isinf(value):
            return {"__enc__": True, "type": "number", "data": js_number(value)}
        return value
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is UNDEFINED:
                out[str(key)] = {"__enc__": True, "type": "undefined"}
            elif key in ("_req", "_res"):
                out[str(key)] = _INTERNAL
            else:
                out[str(key)] = _walk(item, max_length)
        return out
    if kind is list or kind is tuple:
        if len(value) > max_length:
            return {
                "__enc__": True,
                "type": "array",
                "data": [_walk(v, max_length) for v in value[:max_length]],
                "length": len(value),
            }
        return [_walk(v, max_length) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return {
            "type": "Buffer",
            "data": list(data[:max_length]),
            "__enc__": True,
            "length": len(data),
        }
    if isinstance(value, JsError):
        return {"__enc__": True, "type": "error", "data": _error_data(value)}
    if isinstance(value, str):
        return _walk(str(value), max_length)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _walk(float(value), max_length)
    if isinstance(value, dict):
        return _walk(dict(value), max_length)
    if isinstance(value, (list, tuple, set, frozenset)):
        return _walk(list(value), max_length)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if value is UNDEFINED:
        return {"__enc__": True, "type": "undefined"}
    if callable(value):
        return _FUNCTION
    return _INTERNAL  # request/response handles and other runtime objects


def _error_data(value: JsError) -> dict[str, str]:
    return {"name": value.name, "message": value.message, "stack": value.stack}


def to_json(value: Any) -> str:
    """Compact JSON like ``JSON.stringify`` (no spaces, non-ASCII kept)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_value(value: Any, max_length: int = MAX_LENGTH) -> tuple[str, str]:
    """Encode one sidebar value: returns ``(msg, format)`` as Node-RED's ``encodeObject``."""
    if value is UNDEFINED:
        return "(undefined)", "undefined"
    if value is None:
        return "(undefined)", "null"
    if isinstance(value, bool):
        return ("true" if value else "false"), "boolean"
    if isinstance(value, (int, float)):
        return js_number(value), "number"
    if isinstance(value, str):
        text = value if len(value) <= max_length else value[:max_length] + "..."
        return text, f"string[{len(value)}]"
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return data.hex()[:max_length], f"buffer[{len(data)}]"
    if isinstance(value, BaseException):
        return to_json({"name": type(value).__name__, "message": str(value)}), "error"
    if isinstance(value, JsError):
        return to_json(_error_data(value)), "error"
    if isinstance(value, (list, tuple)):
        fmt = f"array[{len(value)}]"
        return to_json(_walk(list(value), max_length)), fmt
    if isinstance(value, dict):
        return to_json(_walk(value, max_length)), "Object"
    if callable(value):
        return "[function]", "function"
    return to_json(_walk(value, max_length)), "Object"


def inspect_value(value: Any) -> str:
    """A short text for the node status, close to Node's ``util.inspect``."""
    if isinstance(value, str):
        return value
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return js_number(value)
    if isinstance(value, (bytes, bytearray)):
        shown = " ".join(f"{b:02x}" for b in bytes(value)[:50])
        return f"<Buffer {shown}{' ...' if len(value) > 50 else ''}>"
    try:
        return to_json(_walk(value, MAX_LENGTH))
    except (TypeError, ValueError):
        return repr(value)


class Config(NodeConfig):
    active: bool = True
    tosidebar: bool = True
    console: bool = False
    tostatus: bool = False
    complete: str = "payload"
    targetType: Literal["msg", "full", "jsonata"] | None = None  # noqa: N815  (Node-RED name)
    statusVal: str = ""  # noqa: N815
    statusType: Literal["auto", "msg", "jsonata"] = "auto"  # noqa: N815

    @field_validator("complete", mode="before")
    @classmethod
    def _complete_legacy(cls, value: Any) -> Any:
        # Very old flows store complete as a boolean; "false" meant msg.payload.
        if value is True:
            return "true"
        if value is False or value in (None, "", "false"):
            return "payload"
        return value

    @field_validator("console", "active", "tosidebar", "tostatus", mode="before")
    @classmethod
    def _boolean_strings(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() == "true"
        if value is None:
            return False
        return value


SPEC = NodeSpec(
    type="debug",
    version=1,
    category=Category.COMMON,
    inputs=1,
    outputs=0,
    label="debug",
    color="#87a980",
    icon="debug.svg",
    help="""Displays selected message properties in the debug sidebar and optionally the log.

### Inputs
Any message.

### Details
* **Output** (`complete` / `targetType`): a message property (`msg`, default `payload`), the
  complete message (`full`, stored as `complete: "true"`) or a JSONata expression (`jsonata`).
* **To** debug window (`tosidebar`), system console (`console`, the runner log) and node status
  (`tostatus`, up to 32 characters; `statusType` `auto` shows the output value, or pick a
  property or JSONata expression with `statusVal`).
* The button on the node (`active`) turns sidebar output on and off.

Sidebar items follow Node-RED's encoding: buffers, `NaN`/`Infinity`, `undefined` and long
values are marked with `__enc__`; strings and arrays are cut at 1000 characters/items.
""",
)


@register
class DebugNode(Node):
    """Shows messages in the debug sidebar, the runner log and/or the node status."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        cfg = self.cfg = cast(Config, config)
        # Node-RED's runtime decides on complete == "true"; targetType only matters for jsonata.
        self.full = cfg.targetType != "jsonata" and (
            cfg.complete == "true" or cfg.targetType == "full"
        )
        self.expression = cfg.complete if cfg.targetType == "jsonata" else None
        self.property = "payload" if self.full or self.expression else cfg.complete
        self.status_expression = cfg.statusVal if cfg.statusType == "jsonata" else None
        self.status_property = cfg.statusVal or self.property
        self.active = cfg.active
        self.old_status: tuple[str, str, str] | None = None
        self.max_length = MAX_LENGTH

    async def start(self) -> None:
        if self.cfg.tostatus:
            self.status("grey", "ring")
            self.old_status = ("grey", "ring", "")

    async def stop(self) -> None:
        if self.old_status is not None:
            self.status()
            self.old_status = None

    def set_active(self, active: bool) -> None:
        """The sidebar button (Node-RED's ``POST /debug/:id/enable|disable``)."""
        self.active = active

    # ------------------------------------------------------------------ per message
    def _value(self, msg: Msg) -> Any:
        if self.expression is not None:
            try:
                return self.rt.evaluate(self.expression, "jsonata", msg)
            except NodeFailed as exc:
                raise NodeFailed(f"invalid JSONata expression in debug output: {exc}") from exc
        return get_property(msg, self.property, UNDEFINED)

    def on_message(self, msg: Msg) -> None:
        status = msg.get("status")
        if isinstance(status, dict):
            source = status.get("source")
            if isinstance(source, dict) and source.get("id") == self.rt.id:
                return  # our own status change routed back by a status node
        cfg = self.cfg
        value: Any = msg if self.full else self._value(msg)
        if cfg.tostatus:
            self._update_status(msg, value)
        if cfg.console:
            log.info("[debug:%s] %s", self.rt.name or self.rt.id, inspect_value(value))
        if self.active and cfg.tosidebar:
            self.rt.emit_debug(self.sidebar_item(msg, value))

    def sidebar_item(self, msg: Msg, value: Any) -> dict[str, Any]:
        rt = self.rt
        item: dict[str, Any] = {"id": rt.id, "z": rt.z, "path": rt.path, "name": rt.name}
        alias = getattr(rt, "alias", None)
        if alias:
            item["_alias"] = alias
        if "topic" in msg:
            topic = msg["topic"]
            item["topic"] = (
                topic
                if isinstance(topic, (str, int, bool)) or topic is None
                else _walk(topic, self.max_length)
            )
        if not self.full and self.expression is None:
            item["property"] = self.property
        item["msg"], item["format"] = encode_value(value, self.max_length)
        return item

    def _update_status(self, msg: Msg, value: Any) -> None:
        cfg = self.cfg
        if cfg.statusType == "auto":
            shown = msg.get("payload", UNDEFINED) if self.full else value
        elif self.status_expression is not None:
            shown = self.rt.evaluate(self.status_expression, "jsonata", msg)
        else:
            shown = get_property(msg, self.status_property, UNDEFINED)
        fill, shape, text = "grey", "dot", inspect_value(shown)
        if isinstance(shown, dict) and {"fill", "shape", "text"} <= shown.keys():
            fill, shape, text = str(shown["fill"]), str(shown["shape"]), str(shown["text"])
        if cfg.statusType == "auto":
            error = msg.get("error")
            if "error" in msg:
                fill = "red"
                text = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            st = msg.get("status")
            if isinstance(st, dict) and st:
                fill = str(st.get("fill") or "grey")
                shape = str(st.get("shape") or "ring")
                text = str(st.get("text") or "")
        if len(text) > STATUS_MAX:
            text = text[:STATUS_MAX] + "..."
        new = (fill, shape, text)
        if new != self.old_status:
            self.old_status = new
            self.status(_FILLS.get(fill, "grey"), "ring" if shape == "ring" else "dot", text)


_FILLS: dict[str, Fill] = {
    "red": "red",
    "green": "green",
    "yellow": "yellow",
    "blue": "blue",
    "grey": "grey",
}
