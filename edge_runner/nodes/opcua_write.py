"""``opcua-write``: write ``msg.payload`` to an OPC-UA variable as a typed value."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any, ClassVar, Literal

from edge_runner.contract import Category, Msg, NodeConfig, NodeFailed, NodeSpec, register
from edge_runner.nodes._opcua import NodeIdConfig, SessionNode
from edge_runner.nodes.opcua_endpoint import live

DataType = Literal[
    "auto",
    "Boolean",
    "SByte",
    "Byte",
    "Int16",
    "UInt16",
    "Int32",
    "UInt32",
    "Int64",
    "UInt64",
    "Float",
    "Double",
    "String",
    "DateTime",
]
INT_RANGES = {
    "SByte": (-(2**7), 2**7 - 1),
    "Byte": (0, 2**8 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "UInt16": (0, 2**16 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "UInt32": (0, 2**32 - 1),
    "Int64": (-(2**63), 2**63 - 1),
    "UInt64": (0, 2**64 - 1),
}
FLOAT32_MAX = 3.4028234663852886e38
TRUE_TEXT = {"true": True, "1": True, "false": False, "0": False}


def _number(value: Any, type_name: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise NodeFailed(f"cannot write {value!r} as {type_name}: not a number")


def convert(value: Any, type_name: str) -> Any:
    """``value`` as the Python value asyncua writes for ``type_name``; NodeFailed saying why
    when it does not fit (wrong kind, out of range, fraction for an integer type)."""
    if value is None:
        raise NodeFailed(f"cannot write an empty payload as {type_name}")
    if type_name == "Boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in TRUE_TEXT:
            return TRUE_TEXT[value.strip().lower()]
        raise NodeFailed(f"cannot write {value!r} as Boolean (use true/false, 1/0)")
    if type_name in INT_RANGES:
        if isinstance(value, int) and not isinstance(value, bool):
            number: int = value
        else:
            as_float = _number(value, type_name)
            if not math.isfinite(as_float) or as_float != int(as_float):
                raise NodeFailed(f"cannot write {value!r} as {type_name}: not a whole number")
            number = int(as_float)
        low, high = INT_RANGES[type_name]
        if not low <= number <= high:
            raise NodeFailed(f"{number} is out of range for {type_name} ({low}..{high})")
        return number
    if type_name in ("Float", "Double"):
        number_f = _number(value, type_name)
        if type_name == "Float" and math.isfinite(number_f) and abs(number_f) > FLOAT32_MAX:
            raise NodeFailed(f"{number_f} is out of range for Float")
        return number_f
    if type_name == "String":
        if isinstance(value, str):
            return value
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if isinstance(value, bool):
            return "true" if value else "false"
        return json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    if type_name == "DateTime":
        return _datetime(value)
    raise NodeFailed(f"unsupported data type {type_name!r}")


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:  # JavaScript's Date: milliseconds since the epoch
            stamp = dt.datetime.fromtimestamp(value / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise NodeFailed(f"{value!r} is out of range for DateTime") from None
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            stamp = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise NodeFailed(
                f"cannot write {value!r} as DateTime (use ISO 8601 text or epoch milliseconds)"
            ) from None
    else:
        raise NodeFailed(f"cannot write {value!r} as DateTime")
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


class Config(NodeIdConfig):
    dataType: DataType = "auto"  # noqa: N815  # flows.json field name


SPEC = NodeSpec(
    type="opcua-write",
    version=1,
    category=Category.INDUSTRIAL,
    inputs=1,
    outputs=1,
    label="opcua write",
    color="#3fadb5",
    output_labels=("written",),
    help="""Writes `msg.payload` to an OPC-UA variable.

### Inputs
- **payload**: the value to write.
- **topic** *string*: the node id when the node has none (`ns=2;s=Line1.Setpoint`).
- **dataType** *string*: the OPC-UA type when the node's *dataType* is `auto` and you want to
  name it (`Int16`, `Double`, ...).

### Outputs
The input message, after the server accepted the write, with **statusCode** `Good` and
**topic** the node id.

### Details
*dataType* is one of `Boolean`, `SByte`, `Byte`, `Int16`, `UInt16`, `Int32`, `UInt32`,
`Int64`, `UInt64`, `Float`, `Double`, `String`, `DateTime`, or `auto` (take `msg.dataType`,
else ask the server for the variable's type once per session). Numbers given as text are
accepted; values that do not fit (a fraction for an integer type, 70000 for `Int16`, `"abc"`
for `Double`) are refused before anything is sent. `Boolean` takes true/false, 1/0 and their
text. `DateTime` takes ISO 8601 text (UTC when no offset is given) or epoch milliseconds.

A refused write (wrong type, not writable, unknown node) raises an error `catch` nodes get,
with the OPC-UA status name in the text.
""",
)


@register
class OpcUaWrite(SessionNode[Config]):
    """Writes typed values on the endpoint's shared session."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    async def on_message(self, msg: Msg) -> None:
        from asyncua import ua

        connection = live(self.connection)
        node_id = self.cfg.nodeId or msg.get("topic")
        if not isinstance(node_id, str) or not node_id.strip():
            raise NodeFailed("no node id: set one on the node or send it as msg.topic")
        node_id = node_id.strip()
        type_name: str = self.cfg.dataType
        if type_name == "auto":
            given = msg.get("dataType")
            if isinstance(given, str) and given:
                if given not in INT_RANGES and given not in (
                    "Boolean",
                    "Float",
                    "Double",
                    "String",
                    "DateTime",
                ):
                    raise NodeFailed(f"unsupported msg.dataType {given!r}")
                type_name = given
            else:
                variant_type = await connection.variant_type(node_id)
                type_name = variant_type.name
        value = convert(msg.get("payload"), type_name)
        await connection.write(node_id, ua.Variant(value, getattr(ua.VariantType, type_name)))
        msg["topic"] = node_id
        msg["statusCode"] = "Good"
        self.send(msg)
