"""``modbus-client``: the config node naming one Modbus device (TCP, or RTU/ASCII on a serial
line). Field names follow node-red-contrib-modbus so its flows load unchanged."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from edge_runner.connections import modbus
from edge_runner.connections.base import State
from edge_runner.contract import Category, NeedsUserFix, Node, NodeConfig, NodeSpec, register


class Config(NodeConfig):
    clienttype: Literal["tcp", "simpleser", "serial"] = "tcp"
    bufferCommands: bool = True  # noqa: N815  # node-red-contrib-modbus field names
    stateLogEnabled: bool = False  # noqa: N815
    queueLogEnabled: bool = False  # noqa: N815
    failureLogEnabled: bool = True  # noqa: N815
    tcpHost: str = "127.0.0.1"  # noqa: N815
    tcpPort: int = 502  # noqa: N815
    tcpType: str = "DEFAULT"  # noqa: N815
    serialPort: str = "/dev/ttyUSB"  # noqa: N815
    serialType: Literal["RTU-BUFFERD", "RTU", "ASCII"] = "RTU-BUFFERD"  # noqa: N815
    serialBaudrate: int = 9600  # noqa: N815
    serialDatabits: Literal[5, 6, 7, 8] = 8  # noqa: N815
    serialStopbits: Literal[1, 2] = 1  # noqa: N815
    serialParity: Literal["none", "even", "odd"] = "none"  # noqa: N815
    serialConnectionDelay: int = 100  # noqa: N815
    serialAsciiResponseStartDelimiter: str = "0x3A"  # noqa: N815
    unit_id: int = 1
    commandDelay: int = 1  # noqa: N815
    clientTimeout: int = 1000  # noqa: N815  # ms per request
    reconnectOnTimeout: bool = True  # noqa: N815
    reconnectTimeout: int = 2000  # noqa: N815  # ms before the first reconnect attempt
    reconnectMaxTimeout: int = 30000  # noqa: N815  # ms, cap of the doubling backoff (ours)
    parallelUnitIdsAllowed: bool = True  # noqa: N815
    showErrors: bool = False  # noqa: N815
    showWarnings: bool = True  # noqa: N815
    showLogs: bool = True  # noqa: N815

    @field_validator(
        "tcpPort",
        "serialBaudrate",
        "unit_id",
        "commandDelay",
        "clientTimeout",
        "reconnectTimeout",
        "reconnectMaxTimeout",
        "serialConnectionDelay",
        "serialDatabits",
        "serialStopbits",
        mode="before",
    )
    @classmethod
    def _numbers_from_text(cls, value: Any, info: Any) -> Any:
        # the contrib editor stores many numbers as strings, sometimes empty
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return cls.model_fields[info.field_name].default
            try:
                return int(float(text))
            except ValueError:
                raise ValueError(f"{info.field_name} must be a number, got {value!r}") from None
        return value

    @field_validator("tcpPort")
    @classmethod
    def _port_range(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"tcpPort must be 1..65535, got {value}")
        return value

    @field_validator("unit_id")
    @classmethod
    def _unit_range(cls, value: int) -> int:
        if not 0 <= value <= 255:
            raise ValueError(f"unit_id must be 0..255, got {value}")
        return value

    @field_validator("clientTimeout", "reconnectTimeout", "reconnectMaxTimeout")
    @classmethod
    def _positive(cls, value: int, info: Any) -> int:
        if value <= 0:
            raise ValueError(f"{info.field_name} must be a positive number of milliseconds")
        return value


SPEC = NodeSpec(
    type="modbus-client",
    version=1,
    category=Category.CONFIG,
    inputs=0,
    outputs=0,
    is_config=True,
    label="modbus client",
    color="#e9967a",
    help="""A Modbus device the `modbus-read` and `modbus-write` nodes talk to.

### Connection
- **clienttype** `tcp` (Modbus TCP on *tcpHost*:*tcpPort*) or `serial` / `simpleser`
  (RTU or ASCII framing, *serialType*, on *serialPort* with *serialBaudrate*,
  *serialDatabits*, *serialParity*, *serialStopbits*). TCP is what the runner is tested with;
  serial lines use pyserial.
- **unit_id**: the default unit (device) id for nodes that leave theirs empty.
- **clientTimeout**: milliseconds to wait for each answer.
- **reconnectTimeout**: the longest pause (milliseconds) before the first reconnect; the
  pause is random up to that bound (full jitter), which doubles with each failed attempt up to
  **reconnectMaxTimeout** (30 s by default).

### Details
Every node using the same endpoint (host and port, or serial port) shares **one** connection,
even across several `modbus-client` nodes, and readers with the same poll interval share
**one** poll whose requests are merged where their address ranges overlap or touch. Requests
are sent one at a time. When the device stops answering, every node using it turns red
("unavailable") once and a single warning is logged; when it answers again they turn green
("connected") once and "recovered" is logged. Other node-red-contrib-modbus fields (queue and
log options, *tcpType*, *commandDelay*...) are accepted so that existing flows load.
""",
)


@register
class ModbusClientNode(Node):
    """Holds the shared connection to one Modbus endpoint for the nodes that use it."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.connection: modbus.ModbusConnection | None = None

    @property
    def endpoint(self) -> modbus.ModbusEndpoint:
        cfg = self.cfg
        reconnect = (
            cfg.reconnectTimeout / 1000,
            max(cfg.reconnectTimeout, cfg.reconnectMaxTimeout) / 1000,
        )
        if cfg.clienttype == "tcp":
            return modbus.ModbusEndpoint(
                "tcp",
                host=cfg.tcpHost.strip(),
                port=cfg.tcpPort,
                timeout=cfg.clientTimeout / 1000,
                reconnect_min=reconnect[0],
                reconnect_max=reconnect[1],
            )
        parity: Literal["N", "E", "O"] = {"none": "N", "even": "E", "odd": "O"}[  # type: ignore[assignment]  # literal table
            cfg.serialParity
        ]
        return modbus.ModbusEndpoint(
            "ascii" if cfg.serialType == "ASCII" else "rtu",
            serial_port=cfg.serialPort,
            baudrate=cfg.serialBaudrate,
            bytesize=cfg.serialDatabits,
            parity=parity,
            stopbits=cfg.serialStopbits,
            timeout=cfg.clientTimeout / 1000,
            reconnect_min=reconnect[0],
            reconnect_max=reconnect[1],
        )

    async def start(self) -> None:
        if self.cfg.clienttype == "tcp" and not self.cfg.tcpHost.strip():
            raise NeedsUserFix("tcpHost is empty")
        self.connection = modbus.pool_of(self.rt.services).acquire(self.endpoint)
        self.connection.add_listener(self, self._on_state)

    def _on_state(self, state: State, detail: str) -> None:
        if state == "connected":
            self.status("green", "dot", "connected")
        elif state == "unavailable":
            self.status("red", "ring", "unavailable")

    async def stop(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.remove_listener(self)
            await modbus.pool_of(self.rt.services).release(conn)


def attach(
    node: Node, server_id: str, on_state: Callable[[State, str], None]
) -> tuple[ModbusClientNode, modbus.ModbusConnection]:
    """The ``modbus-client`` named in ``server`` and its connection, ``on_state`` listening."""
    client = client_of(node, server_id)
    connection = client.connection
    assert connection is not None  # noqa: S101  # client_of checked it
    connection.add_listener(node, on_state)
    return client, connection


def int_text(value: Any, name: str, default: int) -> Any:
    """A config number the contrib editor may have stored as text (blank: ``default``)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return default
        try:
            return int(float(text))
        except ValueError:
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    return value


def unit_id(value: Any) -> Any:
    """Config validator of a reader's/writer's ``unitid``: blank (the client's) or 0..255."""
    if value in ("", None):
        return None
    value = int_text(value, "unitid", 1)
    if not 0 <= value <= 255:
        raise ValueError(f"unitid must be 0..255, got {value}")
    return value


def client_of(node: Node, server_id: str) -> ModbusClientNode:
    """The ``modbus-client`` a node names in ``server``, or ``NeedsUserFix``."""
    found = node.rt.config_node(server_id)
    if not isinstance(found, ModbusClientNode):
        raise NeedsUserFix(
            f"no modbus-client node {server_id!r}"
            if server_id
            else "no modbus-client (server) configured"
        )
    if found.connection is None:
        raise NeedsUserFix(f"modbus-client {server_id!r} is not running")
    return found


# Fields only our own editor writes; node-red-contrib-modbus's editor writes the markers below.
OWN_FIELDS = frozenset(
    {"valueType", "byteOrder", "wordOrder", "scale", "offset", "tags", "length", "outputFormat"}
)
CONTRIB_MARKERS = frozenset({"showStatusActivities", "emptyMsgOnFail"})


def with_output_format(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with ``outputFormat`` set: ``contrib`` for a node node-red-contrib-modbus's
    editor wrote (its markers, none of our fields), else ``manifold``."""
    if "outputFormat" in fields:
        return fields
    contrib = fields.keys() >= CONTRIB_MARKERS and not OWN_FIELDS & fields.keys()
    return {**fields, "outputFormat": "contrib" if contrib else "manifold"}


def message_id() -> str:
    """A fresh id shaped like node-red-contrib-modbus's ``messageId`` (24 hex digits)."""
    return secrets.token_hex(12)
