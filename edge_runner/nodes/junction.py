"""``junction``: a wiring point (Node-RED 3+); wired through at deploy time, so it costs
nothing."""

from __future__ import annotations

from typing import ClassVar

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, register


class Config(NodeConfig):
    pass


SPEC = NodeSpec(
    type="junction",
    version=1,
    category=Category.COMMON,
    inputs=1,
    outputs=1,
    label="junction",
    color="#dddddd",
    help="""A point where wires meet, to tidy up a flow.

### Inputs
Any message.

### Outputs
The same message, unchanged, to every node wired from the junction.

### Details
Node-RED's editor draws junctions as dots (there is no palette entry). The runner resolves
them when the flows are deployed: a wire into a junction becomes wires to everything the
junction leads to, so a message crosses no extra hop. Junctions work inside subflows, on
subflow ports and after `link in` nodes; a loop made only of junctions ends where it closes.
""",
)


@register
class JunctionNode(Node):
    """Wiring point: passes every message on unchanged (normally wired through at deploy)."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def on_message(self, msg: Msg) -> None:
        self.send(msg)
