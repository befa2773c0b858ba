"""``catch``: receives the messages whose handling raised an error in its flow."""

from __future__ import annotations

from typing import ClassVar, Literal

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, register


class Config(NodeConfig):
    scope: list[str] | Literal["group"] | None = None
    uncaught: bool = False


SPEC = NodeSpec(
    type="catch",
    version=1,
    category=Category.COMMON,
    inputs=0,
    outputs=1,
    label="catch",
    color="#e49191",
    icon="alert.svg",
    help="""Catch errors thrown by nodes on the same flow.

### Outputs
- `error.message` *string*: the error message.
- `error.source.id` / `type` / `name`: the node that raised the error.
- `error.source.count`: how many times this message was caught from that node (a message
  caught 10 times from the same node is dropped, to break error loops).

### Details
The message is the one the failing node was handling, with `error` added.
**scope**: all nodes of the flow (empty), a list of node ids, or `"group"` (the nodes of the
catch node's group). **uncaught**: only errors no other catch node handled. Inside a subflow,
an error no catch node handled is raised again by the subflow instance in its parent flow.
""",
)


@register
class CatchNode(Node):
    """Forwards caught error messages (the engine routes them here)."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def on_message(self, msg: Msg) -> None:
        self.rt.send(msg)
