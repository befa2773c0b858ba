"""``modbus-response``: node-red-contrib-modbus's display of a Modbus answer in the status."""

from __future__ import annotations

import json
from typing import Any, ClassVar, cast

from pydantic import field_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, register
from edge_runner.nodes.debug import inspect_value
from edge_runner.nodes.modbus_client import int_text

STATUS_LENGTH = 100


class Config(NodeConfig):
    registerShowMax: int = 20  # noqa: N815  # node-red-contrib-modbus field name

    @field_validator("registerShowMax", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return int_text(value, "registerShowMax", 20)


SPEC = NodeSpec(
    type="modbus-response",
    version=1,
    category=Category.INDUSTRIAL,
    inputs=1,
    outputs=0,
    label="modbus response",
    color="#e9967a",
    help="""Shows the Modbus answer it receives in its status, as node-red-contrib-modbus does.

### Inputs
- **payload**: an answer `{data, buffer}` (a getter's or reader's second output), a write
  answer `{address, ...}`, or anything else.

### Details
Answers with more than **registerShowMax** values show only their length
(`active got length: 125`); others are shown in full (shortened to 100 characters).
""",
)


@register
class ModbusResponseNode(Node):
    """Shows Modbus answers in its status."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)

    async def start(self) -> None:
        self.status("green", "ring", "initialized")

    def on_message(self, msg: Msg) -> None:
        limit = self.cfg.registerShowMax
        payload = msg.get("payload")
        size: Any = None
        if isinstance(payload, dict) and "address" in payload:
            size = payload.get("length")
        elif isinstance(payload, dict) and isinstance(payload.get("data"), list):
            size = len(payload["data"])
        if isinstance(size, int) and size > limit:
            self.status("green", "dot", f"active got length: {size}")
            return
        shown = payload if isinstance(payload, dict) else json.dumps(payload, default=str)
        self.status("green", "dot", inspect_value(shown)[:STATUS_LENGTH])

    async def stop(self) -> None:
        self.status()
