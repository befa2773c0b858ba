"""``modbus-getter``: node-red-contrib-modbus's read of a configured block on each message."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, cast

from pydantic import field_validator, model_validator

from edge_runner.connections import modbus
from edge_runner.contract import (
    Category,
    Msg,
    NodeConfig,
    NodeSpec,
    register,
)
from edge_runner.nodes import _modbus_contrib as contrib
from edge_runner.nodes.modbus_client import int_text, unit_id
from edge_runner.nodes.modbus_read import FUNCTION_CODES


class Config(contrib.ContribReaderConfig):
    unitid: int | None = None  # empty: the client's unit_id
    dataType: Literal["Coil", "Input", "HoldingRegister", "InputRegister"] = "HoldingRegister"  # noqa: N815
    adr: int = 0
    quantity: int = 1

    @field_validator("unitid", mode="before")
    @classmethod
    def _unit(cls, value: Any) -> Any:
        return unit_id(value)

    @field_validator("adr", "quantity", mode="before")
    @classmethod
    def _ints(cls, value: Any, info: Any) -> Any:
        return int_text(value, info.field_name, 0 if info.field_name == "adr" else 1)

    @model_validator(mode="after")
    def _ranges(self) -> Config:
        limit = modbus.READ_LIMITS[FUNCTION_CODES[self.dataType]]
        if not 0 <= self.adr <= 65535:
            raise ValueError(f"adr must be 0..65535, got {self.adr}")
        if not 1 <= self.quantity <= limit:
            raise ValueError(f"quantity must be 1..{limit} for {self.dataType}")
        return self


SPEC = NodeSpec(
    type="modbus-getter",
    version=1,
    category=Category.INDUSTRIAL,
    inputs=1,
    outputs=2,
    label="modbus getter",
    color="#e9967a",
    output_labels=("values", "response"),
    help="""Reads the configured block on each message, as node-red-contrib-modbus's getter.

### Inputs
Any message triggers one read of *quantity* values from *adr* (`dataType` `Coil` FC1,
`Input` FC2, `HoldingRegister` FC3, `InputRegister` FC4) of *unitid* (the client's when
empty).

### Outputs
1. The request message `{topic, messageId, payload: values, modbusRequest, responseBuffer}`
   (with the input's properties when *keepMsgProperties* is set); `topic` is the input's or
   the node's id. Coils and inputs come as whole bytes of bits.
2. The same with **payload** the answer `{data, buffer}` and **values** the values.

### Details
A device error is a catchable error. Other fields of node-red-contrib-modbus (IO files,
logging) are accepted and ignored.
""",
)


@register
class ModbusGetterNode(contrib.ContribNode):
    """Reads a configured block of coils or registers when a message arrives."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)

    async def on_message(self, msg: Msg) -> None:
        connection = self.connected()
        cfg = self.cfg
        unit = self.unit(cfg.unitid)
        fc = FUNCTION_CODES[cfg.dataType]
        values = await connection.read(modbus.ReadRequest(unit, fc, cfg.adr, cfg.quantity))
        data, response = contrib.read_response(fc, values)
        payload = msg.get("payload")
        fields = {
            "value": (payload.get("value") if isinstance(payload, dict) else None) or payload,
            "unitid": unit,
            "fc": fc,
            "address": cfg.adr,
            "quantity": cfg.quantity,
            "enableDeformedMessages": cfg.enableDeformedMessages,
        }
        req = contrib.request(msg, self.id, fields)
        keep = cfg.keepMsgProperties
        self.send(contrib.outputs(msg, req, data, response, keep=keep, getter=True))
