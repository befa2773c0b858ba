"""node-red-contrib-modbus's messages, for the Modbus nodes that run its flows.

Its getters and writers answer on two outputs: the first is the request message (or the input
merged with it when *keepMsgProperties* is set) carrying the values and the device's answer as
``responseBuffer``; the second carries the answer as ``payload`` and the values as ``values``.
Coils and discrete inputs come back as whole bytes of bits, as the device sends them.
"""

from __future__ import annotations

import json
from typing import Any

from edge_runner.connections import modbus
from edge_runner.connections.base import State, show_state
from edge_runner.contract import Msg, NeedsUserFix, Node, NodeConfig, NodeFailed
from edge_runner.nodes.modbus_client import ModbusClientNode, attach, message_id


class ContribConfig(NodeConfig):
    """The fields node-red-contrib-modbus's editor writes for every node acting on messages."""

    showStatusActivities: bool = False  # noqa: N815  # node-red-contrib-modbus field names
    showErrors: bool = False  # noqa: N815
    showWarnings: bool = True  # noqa: N815
    server: str = ""
    emptyMsgOnFail: bool = False  # noqa: N815
    keepMsgProperties: bool = False  # noqa: N815
    delayOnStart: bool = False  # noqa: N815
    startDelayTime: str | float = ""  # noqa: N815


class ContribReaderConfig(ContribConfig):
    """The fields its editor adds for the getters."""

    logIOActivities: bool = False  # noqa: N815
    useIOFile: bool = False  # noqa: N815
    ioFile: str = ""  # noqa: N815
    useIOForPayload: bool = False  # noqa: N815
    enableDeformedMessages: bool = False  # noqa: N815


class ContribNode(Node):
    """Base of the node-red-contrib-modbus nodes that act on each message: the shared
    connection of the ``modbus-client`` named in ``server``, its state as the status."""

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.client: ModbusClientNode | None = None
        self.connection: modbus.ModbusConnection | None = None

    async def start(self) -> None:
        self.client, self.connection = attach(
            self, str(getattr(self.config, "server", "")), self._on_state
        )

    def _on_state(self, state: State, detail: str) -> None:
        show_state(self, state, detail)

    def connected(self) -> modbus.ModbusConnection:
        """The connection, or ``NeedsUserFix`` before ``start``."""
        if self.connection is None or self.client is None:
            raise NeedsUserFix(f"{self.SPEC.type} is not connected to a modbus-client")
        return self.connection

    def unit(self, unit: int | None) -> int:
        """``unit``, or the client's unit_id when it is missing; checked."""
        if self.client is None:
            raise NeedsUserFix(f"{self.SPEC.type} is not connected to a modbus-client")
        unit = self.client.cfg.unit_id if unit is None else unit
        if not 0 <= unit <= 255:
            raise NodeFailed(f"unitid must be 0..255, got {unit}")
        return unit

    async def stop(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.remove_listener(self)


def request(msg: Msg, node_id: str, fields: dict[str, Any]) -> Msg:
    """The request message the contrib nodes build for one input (``fields`` of its payload)."""
    mid = message_id()
    return {
        "topic": msg.get("topic") or node_id,
        "messageId": mid,
        "payload": {**fields, "messageId": mid},
    }


def outputs(
    msg: Msg, req: Msg, values: Any, response: dict[str, Any], *, keep: bool, getter: bool
) -> list[Msg]:
    """Both outputs for the answer to ``req`` (a getter adds ``modbusRequest``, a writer
    ``input``)."""
    first: Msg = {**msg, **req} if keep else dict(req)
    if getter:
        first["modbusRequest"] = dict(req["payload"])
    else:
        first["input"] = {**req, "payload": dict(req["payload"])}
    first["payload"] = values
    first["responseBuffer"] = response
    second: Msg = {k: v for k, v in first.items() if k != "responseBuffer"}
    second["payload"] = dict(response)
    second["values"] = list(values) if isinstance(values, list) else dict(values)
    return [first, second]


def read_response(fc: int, values: list[int] | list[bool]) -> tuple[list[Any], dict[str, Any]]:
    """The values and ``{data, buffer}`` answer of a read, as the contrib nodes report them."""
    if fc in (1, 2):
        buffer = pack_bits([bool(v) for v in values])
        data: list[Any] = [bool(b >> i & 1) for b in buffer for i in range(8)]
    else:
        data = [int(v) for v in values]
        buffer = modbus.registers_to_bytes(data, "big", "big")
    return data, {"data": list(data), "buffer": buffer}


def write_response(fc: int, address: int, written: list[int] | list[bool]) -> dict[str, Any]:
    """The device's answer to a write as the contrib nodes report it."""
    if fc == 5:
        return {"address": address, "state": bool(written[0])}
    if fc == 6:
        return {"address": address, "value": int(written[0])}
    return {"address": address, "length": len(written)}


def pack_bits(bits: list[bool]) -> bytes:
    """Bits as the Modbus answer carries them: eight to a byte, the first in the lowest bit."""
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def write_value(payload: Any) -> Any:
    """The value a contrib writer writes: ``payload.value`` or the payload; the texts
    ``"true"``/``"false"`` and JSON arrays (from HTTP requests) are read."""
    value = payload["value"] if isinstance(payload, dict) and "value" in payload else payload
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    if isinstance(value, str) and "," in value:
        try:
            return json.loads(value)
        except ValueError:
            raise NodeFailed(f"msg.payload.value {value!r} is not a JSON array") from None
    return value


def written(fc: int, value: Any, quantity: int, address: int) -> list[int] | list[bool]:
    """What a contrib writer sends for ``value`` (FC 15/16 need exactly ``quantity`` values)."""
    if fc in (15, 16):
        count = len(value) if isinstance(value, list) else 1
        if count != quantity:
            kind = "coil" if fc == 15 else "register"
            raise NodeFailed(
                f"Quantity should be less or equal to {kind} payload array length: "
                f"{count} Addr: {address} Q: {quantity}"
            )
        items = value if isinstance(value, list) else [value]
        return [bool(v) for v in items] if fc == 15 else [register(v) for v in items]
    return [bool(value)] if fc == 5 else [register(value)]


def register(value: Any) -> int:
    """A 16-bit register from a number (negative numbers as two's complement)."""
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        raise NodeFailed(f"cannot write {value!r}: a number is needed") from None
    if not -32768 <= number <= 65535:
        raise NodeFailed(f"{value!r} does not fit a 16-bit register")
    return number & 0xFFFF


def parse_payload(msg: Msg) -> dict[str, Any]:
    """A flex node's request: ``msg.payload`` as an object (JSON text is parsed)."""
    payload = msg.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            raise NodeFailed("msg.payload is not a JSON object") from None
    if not isinstance(payload, dict):
        raise NodeFailed("msg.payload must be an object {unitid, fc, address, quantity}")
    return payload


def integer(value: Any) -> int | None:
    """``parseInt`` of a request field (``None`` for NaN)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if value == value else None
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        count = len(digits) - len(digits.lstrip("0123456789"))
        return int(text[: count + (len(text) - len(digits))]) if count else None
    return None
