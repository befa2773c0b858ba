"""``status``: reports status changes of other nodes on the same flow as messages."""

from __future__ import annotations

from typing import ClassVar, Literal

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, register


class Config(NodeConfig):
    scope: list[str] | Literal["group"] | None = None


SPEC = NodeSpec(
    type="status",
    version=1,
    category=Category.COMMON,
    inputs=0,
    outputs=1,
    label="status",
    color="#94c1d0",
    icon="status.svg",
    help="""Report status messages from other nodes on the same flow.

### Outputs
- `status.text` *string*: the status text.
- `status.fill`, `status.shape`: the badge (`red/green/yellow/blue/grey`, `ring/dot`).
- `status.source.id` / `type` / `name`: the node that set the status.

### Details
**scope**: every node of the flow (empty), a list of node ids, or `"group"`. A cleared status
arrives with no fill, shape or text.
""",
)


@register
class StatusNode(Node):
    """Forwards status reports (the engine routes them here)."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def on_message(self, msg: Msg) -> None:
        self.rt.send(msg)
