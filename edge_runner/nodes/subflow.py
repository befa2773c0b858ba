"""Subflow instances (``type: "subflow:<id>"``): the entry point of an expanded subflow.

The flow model expands each instance into namespaced copies of the subflow's nodes; this node
stands in for the instance itself: it forwards its input to the nodes wired to the subflow's
input port (and straight to the instance's outputs when the input is wired to an output).
"""

from __future__ import annotations

from typing import ClassVar

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, register


class Config(NodeConfig):
    pass


SPEC = NodeSpec(
    type="subflow",
    version=1,
    category=Category.COMMON,
    inputs=1,
    outputs=1,
    label="subflow",
    color="#dddddd",
    icon="subflow.svg",
    help="""An instance of a subflow.

### Inputs
Messages go to the nodes wired to the subflow's input.

### Outputs
One port per subflow output, plus the status port when the subflow has one.

### Details
Instance properties (`env`) override the subflow's own environment variables; nodes inside see
them through `env` typed inputs and `${VAR}` config values, together with `NR_SUBFLOW_ID`,
`NR_SUBFLOW_NAME` and `NR_SUBFLOW_PATH`. Each instance has its own flow context. Errors not
caught inside the subflow are raised again by the instance node in the parent flow.
""",
)


@register
class SubflowInstance(Node):
    """Pass-through into an expanded subflow."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def on_message(self, msg: Msg) -> None:
        self.rt.send(msg)
