"""``modbus-flex-getter``: node-red-contrib-modbus's read of whatever ``msg.payload`` asks for."""

from __future__ import annotations

from typing import Any, ClassVar

from edge_runner.connections import modbus
from edge_runner.connections.base import State, show_state
from edge_runner.contract import (
    Category,
    Msg,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    register,
)
from edge_runner.nodes import _modbus_contrib as contrib
from edge_runner.nodes.modbus_client import ModbusClientNode, attach


class Config(NodeConfig):
    showStatusActivities: bool = False  # noqa: N815  # node-red-contrib-modbus field names
    showErrors: bool = False  # noqa: N815
    showWarnings: bool = True  # noqa: N815
    logIOActivities: bool = False  # noqa: N815
    server: str = ""
    useIOFile: bool = False  # noqa: N815
    ioFile: str = ""  # noqa: N815
    useIOForPayload: bool = False  # noqa: N815
    emptyMsgOnFail: bool = False  # noqa: N815
    keepMsgProperties: bool = False  # noqa: N815
    delayOnStart: bool = False  # noqa: N815
    enableDeformedMessages: bool = False  # noqa: N815
    startDelayTime: str | float = ""  # noqa: N815


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
class ModbusFlexGetterNode(Node):
    """Reads the coils or registers each message names."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.client: ModbusClientNode | None = None
        self.connection: modbus.ModbusConnection | None = None

    async def start(self) -> None:
        self.client, self.connection = attach(self, self.cfg.server, self._on_state)

    def _on_state(self, state: State, detail: str) -> None:
        show_state(self, state, detail)

    async def on_message(self, msg: Msg) -> None:
        if self.connection is None or self.client is None:
            raise NeedsUserFix("modbus-flex-getter is not connected to a modbus-client")
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
        unit = self.client.cfg.unit_id if unit is None else unit
        if not 0 <= unit <= 255:
            raise NodeFailed(f"unitid must be 0..255, got {unit}")
        values = await self.connection.read(modbus.ReadRequest(unit, fc, address, quantity))
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

    async def stop(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.remove_listener(self)
