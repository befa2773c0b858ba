"""``comment``: documentation on the canvas; does nothing at run time."""

from __future__ import annotations

from typing import ClassVar

from edge_runner.contract import Category, Node, NodeConfig, NodeSpec, register


class Config(NodeConfig):
    pass


SPEC = NodeSpec(
    type="comment",
    version=1,
    category=Category.COMMON,
    inputs=0,
    outputs=0,
    label="comment",
    color="#ffffff",
    icon="comment.svg",
    help="""A node you can use to add comments to your flows.

### Details
The name is shown on the canvas; the `info` text (markdown) is shown in the info sidebar.
The runner creates the node but it never sends or receives anything.
""",
)


@register
class CommentNode(Node):
    """A note on the canvas."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config
