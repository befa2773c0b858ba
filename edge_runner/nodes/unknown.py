"""``unknown``: Node-RED's placeholder for a node whose type its editor did not know."""

from __future__ import annotations

from typing import ClassVar

from edge_runner.contract import Category, Node, NodeConfig, NodeSpec, register


class Config(NodeConfig):
    modules: list[str] = []


SPEC = NodeSpec(
    type="unknown",
    version=1,
    category=Category.COMMON,
    inputs=1,
    outputs=1,
    label="unknown",
    color="#ffeeee",
    help="""Stands in for a node of a type that is not installed.

### Inputs
Messages are accepted and dropped.

### Details
Node-RED's editor shows a node of a type it does not know as *unknown* (its real type in the
name) and writes the original node back on export. A flows.json that does hold a node of type
`unknown` runs as in Node-RED: the node starts, takes messages and does nothing with them.
*modules* names the packages that would provide the type. A node whose type is simply not
installed (any other type name) is a missing type, reported by the deploy.
""",
)


@register
class UnknownNode(Node):
    """Placeholder for a missing node type: accepts messages and does nothing."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config
