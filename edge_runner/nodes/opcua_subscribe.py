"""``opcua-subscribe``: send a message whenever a watched OPC-UA variable changes."""

from __future__ import annotations

import functools
from typing import Any, ClassVar, cast

from pydantic import Field, field_validator

from edge_runner.connections.base import State
from edge_runner.connections.opcua import DeadbandType, MonitoredItem, OpcUaConnection
from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeError, NodeSpec, register
from edge_runner.nodes._opcua import check_node_id
from edge_runner.nodes.opcua_endpoint import attach, show


class Config(NodeConfig):
    endpoint: str = ""
    nodeIds: tuple[str, ...] = ()  # noqa: N815  # flows.json field names
    interval: float = Field(default=1000, gt=0, le=3_600_000)  # publishing interval, ms
    samplingInterval: float = Field(default=-1, ge=-1, le=3_600_000)  # noqa: N815  # ms
    deadbandType: DeadbandType = "none"  # noqa: N815
    deadbandValue: float = Field(default=0, ge=0)  # noqa: N815
    queueSize: int = Field(default=1, ge=1, le=10_000)  # noqa: N815

    @field_validator("nodeIds", mode="before")
    @classmethod
    def _ids_from_text(cls, value: Any) -> Any:
        # the editor may store one id per line in a text box
        if isinstance(value, str):
            return tuple(p.strip() for p in value.replace(",", "\n").splitlines() if p.strip())
        return value

    @field_validator("nodeIds")
    @classmethod
    def _valid_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("nodeIds: name at least one node id to watch")
        return tuple(check_node_id(v) for v in value)


SPEC = NodeSpec(
    type="opcua-subscribe",
    version=1,
    category=Category.INDUSTRIAL,
    inputs=0,
    outputs=1,
    label="opcua subscribe",
    color="#3fadb5",
    output_labels=("change",),
    help="""Watches OPC-UA variables and sends a message on every change the server reports.

### Outputs
- **payload**: the new value (DateTime as ISO 8601 text, arrays as lists).
- **topic** *string*: the node id that changed.
- **statusCode** *string*: `Good` or the OPC-UA status name (a `Bad...` status is sent too:
  it tells that the value is not valid right now).
- **sourceTimestamp**, **serverTimestamp** *string*: ISO 8601 times from the server.
- **dataType** *string*: the value's OPC-UA type.

### Properties
- **nodeIds**: the node ids to watch (`ns=2;s=Line1.Speed`), one per line.
- **interval**: publishing interval in ms: how often the server sends the changes it
  collected. Every node on the same endpoint with the same interval shares one subscription.
- **samplingInterval**: how often the server samples each value, ms; `-1` samples at the
  publishing interval, `0` as fast as the server can.
- **deadbandType** / **deadbandValue**: `none`; `absolute` (report only changes larger than
  the value); `percent` (of the variable's EURange; the server must support it).
- **queueSize**: values the server keeps per item between publishes (1 = latest only).

### Details
The server sends the current value when the watch starts. After the endpoint was unavailable
(for instance a server restart) the subscription and its items are created again on the new
session and the current values arrive again. A node id the server does not know turns the
node red with the status name and raises an error for `catch` nodes.
""",
)


@register
class OpcUaSubscribe(Node):
    """Monitored items on the endpoint's shared subscription for its interval."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)
        self.connection: OpcUaConnection | None = None
        self.items: list[MonitoredItem] = []
        # items the server refused on the current session, shown instead of "connected"
        self.refused: dict[str, NodeError] = {}

    async def start(self) -> None:
        cfg = self.cfg
        self.connection = attach(self, cfg.endpoint, self._on_state)
        for node_id in cfg.nodeIds:
            item = MonitoredItem(
                node_id=node_id,
                sampling_interval=cfg.samplingInterval,
                queue_size=cfg.queueSize,
                deadband_type=cfg.deadbandType,
                deadband_value=cfg.deadbandValue,
                on_change=functools.partial(self._changed, node_id),
                on_error=functools.partial(self._failed, node_id),
            )
            self.items.append(item)
            await self.connection.add_item(cfg.interval, item)

    def _on_state(self, state: State, detail: str) -> None:
        if state != "connected":
            self.refused.clear()  # items are created again on the next session
        if state == "connected" and self.refused:
            self.status("red", "ring", str(next(iter(self.refused.values())))[:80])
        else:
            show(self, state, detail)

    def _changed(self, node_id: str, fields: Msg) -> None:
        msg: Msg = {"topic": node_id, "payload": fields["value"]}
        for key in ("statusCode", "sourceTimestamp", "serverTimestamp", "dataType"):
            msg[key] = fields[key]
        self.send(msg)

    def _failed(self, node_id: str, failure: NodeError) -> None:
        self.refused[node_id] = failure
        self.status("red", "ring", str(failure)[:80])
        # a message carrying the node id, so that catch nodes receive the failure
        self.error(failure, {"topic": node_id, "payload": None})

    async def stop(self) -> None:
        conn, self.connection = self.connection, None
        if conn is None:
            return
        conn.remove_listener(self)
        for item in self.items:
            await conn.remove_item(item)
        self.items = []
