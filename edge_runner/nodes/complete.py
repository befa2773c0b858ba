"""``complete``: triggered when the nodes it watches finish handling a message."""

from __future__ import annotations

from typing import ClassVar

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, register


class Config(NodeConfig):
    scope: list[str] | None = None
    uncaught: bool = False  # written by the Node-RED editor; has no effect


SPEC = NodeSpec(
    type="complete",
    version=1,
    category=Category.COMMON,
    inputs=0,
    outputs=1,
    label="complete",
    color="#c0edc0",
    icon="alert.svg",
    help="""Trigger a flow when another node completes its handling of a message.

### Outputs
A copy of the message the watched node finished.

### Details
**scope** lists the watched node ids. A node has completed a message when its handler
returned (synchronous nodes), when its queued handling finished (asynchronous nodes), or when
it called `done()` (nodes that finish later, e.g. a python-function body calling `node.done()`).
A message that raised an error is not complete; it goes to catch nodes instead.
""",
)


@register
class CompleteNode(Node):
    """Forwards completed messages (the engine routes them here)."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def on_message(self, msg: Msg) -> None:
        self.rt.send(msg)
