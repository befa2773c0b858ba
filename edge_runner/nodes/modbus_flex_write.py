"""``modbus-flex-write``: node-red-contrib-modbus's write of whatever ``msg.payload`` asks for."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from edge_runner.contract import (
    Category,
    Msg,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    register,
)
from edge_runner.nodes import _modbus_contrib as contrib


class Config(contrib.ContribConfig):
    """node-red-contrib-modbus's fields (it has no others)."""


SPEC = NodeSpec(
    type="modbus-flex-write",
    version=1,
    category=Category.INDUSTRIAL,
    inputs=1,
    outputs=2,
    label="modbus flex write",
    color="#e9967a",
    output_labels=("written", "response"),
    help="""Writes what each message asks for, as node-red-contrib-modbus's flex write.

### Inputs
- **payload** *object* (or its JSON text): **value**, **fc** 5 (one coil), 6 (one register),
  15 (coils) or 16 (registers), **address**, **quantity** and **unitid** (the client's when
  missing). FC 15 and 16 need an array of exactly *quantity* values; the texts "true"/"false"
  and "[1,2]" are read as a boolean and an array.

### Outputs
1. The request message `{topic, messageId, payload: {value, unitid, fc, address, quantity,
   messageId}, responseBuffer, input}` (with the input's properties when *keepMsgProperties*
   is set), sent once the device acknowledged the write.
2. The same with **payload** the device's answer (`{address, value}`, `{address, state}` or
   `{address, length}`) and **values** the request.

### Details
A bad request (`FC Not Valid`, `Address Not Valid`, `Quantity Not Valid`) or a device error
is a catchable error and nothing is written.
""",
)


@register
class ModbusFlexWriteNode(contrib.ContribNode):
    """Writes the coils or registers each message names."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)

    async def on_message(self, msg: Msg) -> None:
        connection = self.connected()
        payload = contrib.parse_payload(msg)
        fc = contrib.integer(payload.get("fc"))
        address = contrib.integer(payload.get("address"))
        quantity = contrib.integer(payload.get("quantity"))
        unit = contrib.integer(payload.get("unitid"))
        if fc not in (5, 6, 15, 16):
            raise NodeFailed("FC Not Valid")
        if address is None or not 0 <= address <= 65535:
            raise NodeFailed("Address Not Valid")
        if quantity is None or not 1 <= quantity <= 65535:
            raise NodeFailed("Quantity Not Valid")
        unit = self.unit(unit)
        value = contrib.write_value(payload)
        written = contrib.written(fc, value, quantity, address)
        await connection.write(fc, unit, address, written)
        fields = {
            "value": value,
            "unitid": unit,
            "fc": fc,
            "address": address,
            "quantity": quantity,
        }
        req = contrib.request(msg, self.id, fields)
        answer = contrib.write_response(fc, address, written)
        keep = self.cfg.keepMsgProperties
        self.send(contrib.outputs(msg, req, req["payload"], answer, keep=keep, getter=False))
