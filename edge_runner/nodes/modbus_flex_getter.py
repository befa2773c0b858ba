"""``modbus-flex-getter``: node-red-contrib-modbus's read of whatever ``msg.payload`` asks for."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from edge_runner.connections import modbus
from edge_runner.contract import (
    Category,
    Msg,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    register,
)
from edge_runner.nodes import _modbus_contrib as contrib


class Config(contrib.ContribReaderConfig):
    """node-red-contrib-modbus's fields (it has no others)."""


SPEC = NodeSpec(
    type="modbus-flex-getter",
    version=1,
    category=Category.INDUSTRIAL,
    inputs=1,
    outputs=2,
    label="modbus flex getter",
    color="#e9967a",
    output_labels=("values", "response"),
    help="""Reads what each message asks for, as node-red-contrib-modbus's flex getter.

### Inputs
- **payload** *object* (or its JSON text): **fc** 1 (coils), 2 (discrete inputs), 3 (holding
  registers, the default) or 4 (input registers), **address** (0 by default), **quantity**
  (1 by default) and **unitid** (the client's when missing).

### Outputs
1. The request message `{topic, messageId, payload: values, modbusRequest, responseBuffer}`
   (with the input's properties when *keepMsgProperties* is set); `topic` is the input's or
   the node's id. Coils and inputs come as whole bytes of bits.
2. The same with **payload** the answer `{data, buffer}` and **values** the values.

### Details
A bad request (`FC Not Valid`, `Address Not Valid`, `Quantity Not Valid`) or a device error
is a catchable error. Other fields of node-red-contrib-modbus (IO files, logging) are accepted
and ignored.
""",
)


@register
class ModbusFlexGetterNode(contrib.ContribNode):
    """Reads the coils or registers each message names."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)

    async def on_message(self, msg: Msg) -> None:
        connection = self.connected()
        payload = contrib.parse_payload(msg)
        fc = contrib.integer(payload.get("fc")) or 3
        address = contrib.integer(payload.get("address")) or 0
        quantity = contrib.integer(payload.get("quantity")) or 1
        unit = contrib.integer(payload.get("unitid"))
        if fc not in (1, 2, 3, 4):
            raise NodeFailed("FC Not Valid")
        if not 0 <= address <= 65535:
            raise NodeFailed("Address Not Valid")
        if not 1 <= quantity <= modbus.READ_LIMITS[fc]:
            raise NodeFailed("Quantity Not Valid")
        unit = self.unit(unit)
        values = await connection.read(modbus.ReadRequest(unit, fc, address, quantity))
        data, response = contrib.read_response(fc, values)
        fields = {
            "value": payload.get("value") or msg.get("value"),
            "unitid": unit,
            "fc": fc,
            "address": address,
            "quantity": quantity,
            "emptyMsgOnFail": self.cfg.emptyMsgOnFail,
            "keepMsgProperties": self.cfg.keepMsgProperties,
            "enableDeformedMessages": self.cfg.enableDeformedMessages,
        }
        req = contrib.request(msg, self.id, fields)
        keep = self.cfg.keepMsgProperties
        self.send(contrib.outputs(msg, req, data, response, keep=keep, getter=True))
