"""``modbus-write``: write coils or holding registers (FC 5/6/15/16) from ``msg.payload``,
encoding numbers and strings like ``modbus-read`` decodes them."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

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
from edge_runner.nodes.modbus_client import (
    ModbusClientNode,
    attach,
    int_text,
    unit_id,
    with_output_format,
)
from edge_runner.nodes.modbus_read import ValueType

FUNCTION_CODES = {"Coil": 5, "HoldingRegister": 6, "MCoils": 15, "MHoldingRegisters": 16}


class Config(NodeConfig):
    showStatusActivities: bool = False  # noqa: N815  # node-red-contrib-modbus field names
    showErrors: bool = False  # noqa: N815
    showWarnings: bool = True  # noqa: N815
    unitid: int | None = None
    dataType: Literal["Coil", "HoldingRegister", "MCoils", "MHoldingRegisters"] = "HoldingRegister"  # noqa: N815
    adr: int = 0
    quantity: int = 1
    server: str = ""
    emptyMsgOnFail: bool = False  # noqa: N815
    keepMsgProperties: bool = False  # noqa: N815
    delayOnStart: bool = False  # noqa: N815
    startDelayTime: float = 10  # noqa: N815
    # ours: encoding
    valueType: ValueType = "raw"  # noqa: N815
    byteOrder: Literal["big", "little"] = "big"  # noqa: N815
    wordOrder: Literal["big", "little"] = "big"  # noqa: N815
    scale: float = 1.0
    offset: float = 0.0
    length: int = 0  # registers reserved for a string (0: as long as the text)
    # what the outputs carry: ours, or node-red-contrib-modbus's messages (see migrate)
    outputFormat: Literal["manifold", "contrib"] = "manifold"  # noqa: N815

    @field_validator("unitid", mode="before")
    @classmethod
    def _unit(cls, value: Any) -> Any:
        return unit_id(value)

    @field_validator("adr", "quantity", mode="before")
    @classmethod
    def _ints(cls, value: Any, info: Any) -> Any:
        return int_text(value, info.field_name, 0 if info.field_name == "adr" else 1)

    @field_validator("startDelayTime", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return (
            float(value)
            if isinstance(value, str) and value.strip()
            else (10 if value == "" else value)
        )

    @model_validator(mode="after")
    def _ranges(self) -> Config:
        if not 0 <= self.adr <= 65535:
            raise ValueError(f"adr must be 0..65535, got {self.adr}")
        if self.scale == 0:
            raise ValueError("scale must not be 0 (values are divided by it before writing)")
        if self.dataType in ("Coil", "MCoils") and self.valueType != "raw":
            raise ValueError("valueType applies to registers; coils are written as booleans")
        return self


SPEC = NodeSpec(
    type="modbus-write",
    version=1,
    category=Category.INDUSTRIAL,
    inputs=1,
    outputs=2,
    label="modbus write",
    color="#e9967a",
    output_labels=("written", "response"),
    help="""Writes `msg.payload` to a Modbus device.

### Inputs
- **payload**: for `Coil` (FC5) a boolean (or 0/1); for `MCoils` (FC15) an array of
  booleans; for `HoldingRegister` a number (FC6, or FC16 when the encoding needs several
  registers); for `MHoldingRegisters` (FC16) an array of numbers or one value to encode.
  An object `{value, address, unitid}` writes `value` somewhere else once.

### Outputs
The input message, sent on after the device acknowledged the write, with **modbus**
`{unit, fc, address, quantity, registers}` (what was written). The second output carries
node-red-contrib-modbus's raw message: **payload** the device's answer (`{address, value}`,
`{address, state}` or `{address, length}`), **values** the write request.

### node-red-contrib-modbus flows
A node its editor wrote (it has `showStatusActivities` and `emptyMsgOnFail` and none of our
encoding fields) gets **outputFormat** `contrib` and behaves like it: the value is
`msg.payload.value` or `msg.payload` ("true"/"false" and "1,2,3" texts are read as a boolean
or an array), written at the node's *adr* and *unitid*; `MCoils`/`MHoldingRegisters` need
exactly *quantity* values. The first output is a new message `{topic, messageId, payload:
{value, unitid, fc, address, quantity, messageId}, responseBuffer, input}` (the input's
properties kept when *keepMsgProperties* is set), its topic the input's or the node's id.

### Details
**valueType** `raw` writes numbers as 16-bit registers (negative numbers as two's
complement); `int16`...`float64` and `string` encode each value with **byteOrder** and
**wordOrder** (see `modbus-read`), after `(value - offset) / scale`. Integer types round to
the nearest whole number; a value that does not fit its type is a catchable error and nothing
is written. A string is padded with NUL bytes to **length** registers when set. While the
device is unavailable writes fail with a catchable error (they are not queued: a late write
to a machine can be worse than none).
""",
)


@register
class ModbusWriteNode(Node):
    """Writes coils or holding registers to a Modbus device."""

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

    def registers(self, value: Any) -> list[int]:
        """The registers ``value`` is written as (``NodeFailed`` when it cannot be)."""
        cfg = self.cfg
        values = value if isinstance(value, list) else [value]
        out: list[int] = []
        for item in values:
            if cfg.valueType == "string":
                out += modbus.encode(item, "string", cfg.byteOrder, cfg.wordOrder, cfg.length)
                continue
            number = _number(item)
            number = (
                (number - cfg.offset) / cfg.scale if (cfg.scale, cfg.offset) != (1, 0) else number
            )
            if cfg.valueType == "raw":
                whole = round(number)
                if not -32768 <= whole <= 65535:
                    raise NodeFailed(f"{item!r} does not fit a 16-bit register")
                out.append(whole & 0xFFFF)
            else:
                if not cfg.valueType.startswith("float"):
                    number = round(number)
                out += modbus.encode(number, cfg.valueType, cfg.byteOrder, cfg.wordOrder)
        return out

    async def on_message(self, msg: Msg) -> None:
        if self.connection is None or self.client is None:
            raise NeedsUserFix("modbus-write is not connected to a modbus-client")
        cfg = self.cfg
        if cfg.outputFormat == "contrib":
            await self._contrib(msg, self.connection, self.client)
            return
        payload = msg.get("payload")
        address, unit = cfg.adr, cfg.unitid if cfg.unitid is not None else self.client.cfg.unit_id
        if isinstance(payload, dict):
            if "value" not in payload:
                raise NodeFailed("msg.payload object needs a 'value'")
            try:
                address = int(payload.get("address", address))
                unit = int(payload.get("unitid", unit))
            except (TypeError, ValueError):
                raise NodeFailed("msg.payload address and unitid must be numbers") from None
            if not 0 <= address <= 65535 or not 0 <= unit <= 255:
                raise NodeFailed(f"write out of range: unit {unit} address {address}")
            payload = payload["value"]
        fc = FUNCTION_CODES[cfg.dataType]
        written: list[int] | list[bool]
        if fc in (5, 15):
            items = payload if isinstance(payload, list) else [payload]
            if fc == 5 and len(items) != 1:
                raise NodeFailed("Coil writes one value; use MCoils for an array")
            written = [_boolean(v) for v in items]
        else:
            written = self.registers(payload)
            if fc == 6 and len(written) > 1:
                fc = 16
        if not written:
            raise NodeFailed("nothing to write (empty array)")
        limit = modbus.WRITE_LIMITS.get(fc, 1)
        if len(written) > limit:
            raise NodeFailed(f"{len(written)} values exceed the FC{fc} limit of {limit}")
        await self.connection.write(fc, unit, address, written)
        msg["modbus"] = {
            "unit": unit,
            "fc": fc,
            "address": address,
            "quantity": len(written),
            "registers": list(written),
        }
        request = {"value": payload, "unitid": unit, "fc": fc, "address": address}
        raw: Msg = {
            "topic": msg.get("topic"),
            "payload": contrib.write_response(fc, address, written),
        }
        raw["values"] = {**request, "quantity": len(written)}
        self.send([msg, raw])

    async def _contrib(
        self, msg: Msg, connection: modbus.ModbusConnection, client: ModbusClientNode
    ) -> None:
        cfg = self.cfg
        value = contrib.write_value(msg.get("payload"))
        fc = FUNCTION_CODES[cfg.dataType]
        unit = cfg.unitid if cfg.unitid is not None else client.cfg.unit_id
        written = contrib.written(fc, value, cfg.quantity, cfg.adr)
        await connection.write(fc, unit, cfg.adr, written)
        fields = {
            "value": value,
            "unitid": unit,
            "fc": fc,
            "address": cfg.adr,
            "quantity": cfg.quantity,
        }
        req = contrib.request(msg, self.id, fields)
        answer = contrib.write_response(fc, cfg.adr, written)
        self.send(
            contrib.outputs(
                msg, req, req["payload"], answer, keep=cfg.keepMsgProperties, getter=False
            )
        )

    @staticmethod
    def migrate(fields: dict[str, Any]) -> dict[str, Any]:
        """Tell a node node-red-contrib-modbus's editor wrote from one of ours."""
        return with_output_format(fields)

    async def stop(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.remove_listener(self)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise NodeFailed(f"cannot write {value!r}: a number is needed")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise NodeFailed(f"cannot write {value!r} to a coil: true/false or 1/0 is needed")
