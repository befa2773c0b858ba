"""``modbus-read``: poll (or read on input) coils, discrete inputs, holding or input registers
and decode them into numbers, strings or a named tag map."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from edge_runner.connections import modbus
from edge_runner.connections.base import State, show_state
from edge_runner.contract import (
    Category,
    Msg,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeError,
    NodeFailed,
    NodeSpec,
    RetryLater,
    register,
)
from edge_runner.nodes import _modbus_contrib as contrib
from edge_runner.nodes.modbus_client import (
    ModbusClientNode,
    attach,
    int_text,
    message_id,
    unit_id,
    with_output_format,
)

FUNCTION_CODES = {"Coil": 1, "Input": 2, "HoldingRegister": 3, "InputRegister": 4}
RATE_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
ValueType = Literal[
    "raw", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]


class Tag(BaseModel):
    """One named value inside the read range (``address`` is its absolute register address)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    address: int
    type: Literal[
        "bool",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float32",
        "float64",
        "string",
    ] = "uint16"
    length: int = 0  # registers of a string
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0

    @property
    def size(self) -> int:
        return 1 if self.type == "bool" else modbus.register_count(self.type, self.length)


class Config(NodeConfig):
    topic: str = ""
    showStatusActivities: bool = False  # noqa: N815  # node-red-contrib-modbus field names
    logIOActivities: bool = False  # noqa: N815
    showErrors: bool = False  # noqa: N815
    showWarnings: bool = True  # noqa: N815
    unitid: int | None = None  # empty: the client's unit_id
    dataType: Literal["Coil", "Input", "HoldingRegister", "InputRegister"] = "Coil"  # noqa: N815
    adr: int = 0
    quantity: int = 1
    rate: float = 10
    rateUnit: Literal["ms", "s", "m", "h"] = "s"  # noqa: N815
    delayOnStart: bool = False  # noqa: N815
    startDelayTime: float = 10  # noqa: N815  # seconds
    server: str = ""
    useIOFile: bool = False  # noqa: N815
    ioFile: str = ""  # noqa: N815
    useIOForPayload: bool = False  # noqa: N815
    emptyMsgOnFail: bool = False  # noqa: N815
    enableDeformedMessages: bool = False  # noqa: N815
    # ours: decoding
    valueType: ValueType = "raw"  # noqa: N815
    byteOrder: Literal["big", "little"] = "big"  # noqa: N815
    wordOrder: Literal["big", "little"] = "big"  # noqa: N815
    scale: float = 1.0
    offset: float = 0.0
    tags: tuple[Tag, ...] = ()
    # what the first output carries: ours, or node-red-contrib-modbus's message (see migrate)
    outputFormat: Literal["manifold", "contrib"] = "manifold"  # noqa: N815

    @field_validator("unitid", mode="before")
    @classmethod
    def _unit(cls, value: Any) -> Any:
        return unit_id(value)

    @field_validator("adr", "quantity", mode="before")
    @classmethod
    def _ints(cls, value: Any, info: Any) -> Any:
        return int_text(value, info.field_name, 0 if info.field_name == "adr" else 1)

    @field_validator("rate", "startDelayTime", mode="before")
    @classmethod
    def _floats(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            try:
                return float(value.strip() or 0)
            except ValueError:
                raise ValueError(f"{info.field_name} must be a number, got {value!r}") from None
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _no_tags(cls, value: Any) -> Any:
        return () if value in (None, "") else value

    @model_validator(mode="after")
    def _ranges(self) -> Config:
        fc = FUNCTION_CODES[self.dataType]
        if not 0 <= self.adr <= 65535:
            raise ValueError(f"adr must be 0..65535, got {self.adr}")
        if not 1 <= self.quantity <= modbus.READ_LIMITS[fc]:
            raise ValueError(
                f"quantity must be 1..{modbus.READ_LIMITS[fc]} for {self.dataType}"
                f", got {self.quantity}"
            )
        if self.rate < 0:
            raise ValueError("rate must not be negative")
        end = self.adr + self.quantity
        seen: set[str] = set()
        for tag in self.tags:
            if tag.name in seen:
                raise ValueError(f"tag {tag.name!r} appears twice")
            seen.add(tag.name)
            if (fc in (1, 2)) != (tag.type == "bool"):
                raise ValueError(
                    f"tag {tag.name!r}: type bool is for coils/inputs only, "
                    f"and coils/inputs can only be bool"
                )
            if not (self.adr <= tag.address and tag.address + tag.size <= end):
                raise ValueError(
                    f"tag {tag.name!r} (register {tag.address}, {tag.size} "
                    f"register(s)) is outside the read range {self.adr}..{end - 1}"
                )
        if fc in (1, 2) and self.valueType != "raw":
            raise ValueError("valueType applies to registers; coils and inputs read as booleans")
        if (
            self.valueType not in ("raw", "string")
            and not self.tags
            and self.quantity % modbus.register_count(self.valueType)
        ):
            raise ValueError(
                f"quantity {self.quantity} is not a whole number of {self.valueType} values"
            )
        return self


SPEC = NodeSpec(
    type="modbus-read",
    version=1,
    category=Category.INDUSTRIAL,
    inputs=1,
    outputs=2,
    label="modbus read",
    color="#e9967a",
    output_labels=("values", "response"),
    help="""Reads a block of a Modbus device every *rate* *rateUnit*, or when a message arrives.

### Inputs
Any message triggers one read of the configured block (also when polling). `msg.payload`
may be an object with **address**, **quantity** and **unitid** to read something else once.

### Outputs
- **payload**: with *tags*, an object `{tag: value}`; otherwise an array — the raw values
  (register numbers, or booleans for coils/inputs) when *valueType* is `raw`, else the
  decoded values.
- **topic**: the node's *topic* (or the input message's).
- **modbus** *object*: `unit`, `fc`, `address`, `quantity`, `raw` (the registers/bits read),
  `units` (`{tag: unit}`) and `timestamp` (ms since the epoch).
- **responseBuffer** *object*: `data` (raw values) and `buffer` (the register bytes), as
  node-red-contrib-modbus sends it.

The second output carries node-red-contrib-modbus's raw message: **payload** the response
`{data, buffer}`, **values**, **input** (the poll request or input message), **topic** and
**sendingNodeId**.

### node-red-contrib-modbus flows
A node its editor wrote (it has `showStatusActivities` and `emptyMsgOnFail` and none of our
decoding fields) gets **outputFormat** `contrib`: the first output is then exactly its message
`{topic, payload: values, responseBuffer, input, sendingNodeId}`, a poll's topic being the
node's *topic* or `polling`, and coils/inputs read as whole bytes of bits, as it sends them.

### Details
*dataType* picks the function code: `Coil` FC1, `Input` FC2, `HoldingRegister` FC3,
`InputRegister` FC4; *adr* is the 0-based address, *quantity* the count.
**valueType** `int16`, `uint16`, `int32`, `uint32`, `int64`, `uint64`, `float32`,
`float64` or `string` decodes consecutive registers with **byteOrder** (inside each register)
and **wordOrder** (between registers): big/big is `ABCD`, big/little `CDAB`, little/big
`BADC`, little/little `DCBA`. Each number becomes `value * scale + offset`.
**tags** name values inside the block: `{name, address, type, length, unit, scale, offset}`,
`address` being the absolute register address (`length` = registers of a string).

Readers sharing a `modbus-client` and an interval share one poll; overlapping or adjacent
blocks are read in one request. The status follows the device: green "connected", red
"unavailable" once when it stops answering, green again when it recovers. A device exception
(e.g. illegal data address) is raised as a catchable error once, when it first happens.
""",
)


@register
class ModbusReadNode(Node):
    """Reads and decodes a register or bit block from a Modbus device."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.client: ModbusClientNode | None = None
        self.connection: modbus.ModbusConnection | None = None
        self._delayed: asyncio.TimerHandle | None = None
        self._last_error = ""
        self.reads = 0

    @property
    def request(self) -> modbus.ReadRequest:
        assert self.client is not None  # noqa: S101  # only called after start
        unit = self.cfg.unitid if self.cfg.unitid is not None else self.client.cfg.unit_id
        return modbus.ReadRequest(
            unit, FUNCTION_CODES[self.cfg.dataType], self.cfg.adr, self.cfg.quantity
        )

    async def start(self) -> None:
        self.client, self.connection = attach(self, self.cfg.server, self._on_state)
        interval = self.cfg.rate * RATE_UNITS[self.cfg.rateUnit]
        if interval > 0:
            if self.cfg.delayOnStart and self.cfg.startDelayTime > 0:
                self._delayed = asyncio.get_running_loop().call_later(
                    self.cfg.startDelayTime, self._subscribe, interval
                )
            else:
                self._subscribe(interval)

    def _subscribe(self, interval: float) -> None:
        self._delayed = None
        if self.connection is not None:
            self.connection.subscribe(self, interval, self.request, self._on_poll)

    def _on_state(self, state: State, detail: str) -> None:
        show_state(self, state, detail)
        if state == "connected":
            self._last_error = ""

    def _on_poll(self, values: list[int] | list[bool] | None, error: NodeError | None) -> None:
        if error is not None:
            self._report(error, None)
            return
        assert values is not None  # noqa: S101  # the poller passes values or an error
        try:
            msgs = self.build(values, self.request, None)
        except NodeError as exc:
            self._report(exc, None)
            return
        self._last_error = ""
        self.send(msgs)

    def _report(self, error: NodeError, msg: Msg | None) -> None:
        text = str(error)
        # a transport failure is the connection's state change (red once), not an error per poll
        if isinstance(error, RetryLater):
            return
        if text != self._last_error:
            self.error(text, msg)
        self._last_error = text

    def build(
        self, values: list[int] | list[bool], req: modbus.ReadRequest, msg: Msg | None
    ) -> list[Msg]:
        """Both outputs for ``values`` read with ``req`` (``msg``: the input, ``None`` when
        polling)."""
        self.reads += 1
        if self.cfg.outputFormat == "contrib":
            return self._contrib(values, req, msg)
        request: Msg = {"payload": self._request_payload(req)} if msg is None else dict(msg)
        msg = {} if msg is None else msg
        cfg = self.cfg
        payload: Any
        units: dict[str, str] = {}
        if cfg.tags:
            payload = {}
            for tag in cfg.tags:
                lo = tag.address - req.address
                if lo < 0 or lo + tag.size > len(values):
                    raise NodeFailed(f"tag {tag.name!r} is outside the block read")
                chunk = values[lo : lo + tag.size]
                if tag.type == "bool":
                    payload[tag.name] = bool(chunk[0])
                else:
                    value = modbus.decode(
                        [int(v) for v in chunk], tag.type, cfg.byteOrder, cfg.wordOrder
                    )
                    payload[tag.name] = _scaled(value, tag.scale, tag.offset)
                if tag.unit:
                    units[tag.name] = tag.unit
        elif cfg.valueType == "raw" or req.fc in (1, 2):
            payload = list(values)
        else:
            decoded = modbus.decode_all(
                [int(v) for v in values], cfg.valueType, cfg.byteOrder, cfg.wordOrder
            )
            payload = [_scaled(v, cfg.scale, cfg.offset) for v in decoded]
        raw = list(values)
        msg["topic"] = cfg.topic or msg.get("topic") or ""
        msg["payload"] = payload
        msg["modbus"] = {
            "unit": req.unit,
            "fc": req.fc,
            "address": req.address,
            "quantity": req.quantity,
            "raw": raw,
            "units": units,
            "timestamp": int(time.time() * 1000),
        }
        buffer = (
            b""
            if req.fc in (1, 2)
            else modbus.registers_to_bytes([int(v) for v in raw], "big", "big")
        )
        msg["responseBuffer"] = {"data": raw, "buffer": buffer}
        second = self._raw(msg["topic"], {"data": list(raw), "buffer": buffer}, list(raw), request)
        return [msg, second]

    def _request_payload(self, req: modbus.ReadRequest) -> dict[str, Any]:
        return {
            "unitid": req.unit,
            "fc": req.fc,
            "address": req.address,
            "quantity": req.quantity,
            "enableDeformedMessages": self.cfg.enableDeformedMessages,
            "messageId": message_id(),
        }

    def _raw(self, topic: Any, response: dict[str, Any], values: list[Any], request: Any) -> Msg:
        return {
            "topic": topic,
            "payload": response,
            "values": values,
            "input": request,
            "sendingNodeId": self.id,
        }

    def _contrib(
        self, values: list[int] | list[bool], req: modbus.ReadRequest, msg: Msg | None
    ) -> list[Msg]:
        if msg is None:
            topic = self.cfg.topic or "polling"
            request: Msg = {"topic": topic, "from": self.cfg.name}
            request["payload"] = self._request_payload(req)
        else:
            request = dict(msg)
            topic = msg.get("topic") or self.cfg.topic
        data, response = contrib.read_response(req.fc, values)
        first: Msg = {
            "topic": topic,
            "payload": data,
            "responseBuffer": response,
            "input": request,
            "sendingNodeId": self.id,
        }
        second = self._raw(topic, dict(response), list(data), dict(request))
        return [first, second]

    async def on_message(self, msg: Msg) -> None:
        if self.connection is None or self.client is None:
            raise NeedsUserFix("modbus-read is not connected to a modbus-client")
        req = self.request
        override = msg.get("payload")
        if isinstance(override, dict) and {"address", "quantity", "unitid"} & override.keys():
            req = _override(req, override)
        values = await self.connection.read(req)
        self.send(self.build(values, req, msg))

    @staticmethod
    def migrate(fields: dict[str, Any]) -> dict[str, Any]:
        """Tell a node node-red-contrib-modbus's editor wrote from one of ours."""
        return with_output_format(fields)

    async def stop(self) -> None:
        if self._delayed is not None:
            self._delayed.cancel()
            self._delayed = None
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.remove_listener(self)
            await conn.unsubscribe(self)


def _scaled(value: int | float | str, scale: float, offset: float) -> int | float | str:
    if isinstance(value, str) or (scale == 1 and offset == 0):
        return value
    return value * scale + offset


def _override(req: modbus.ReadRequest, data: dict[str, Any]) -> modbus.ReadRequest:
    try:
        address = int(data.get("address", req.address))
        quantity = int(data.get("quantity", req.quantity))
        unit = int(data.get("unitid", req.unit))
    except (TypeError, ValueError) as exc:
        raise NodeFailed(f"msg.payload address/quantity/unitid must be numbers: {exc}") from None
    if (
        not 0 <= address <= 65535
        or not 1 <= quantity <= modbus.READ_LIMITS[req.fc]
        or not 0 <= unit <= 255
    ):
        raise NodeFailed(f"read out of range: unit {unit} address {address} quantity {quantity}")
    return modbus.ReadRequest(unit, req.fc, address, quantity)
