"""``filter``: the palette name of ``rbe``, accepted as a type name too.

Node-RED 5 still writes ``"type": "rbe"`` (the palette and the label say *filter*, the
registered type never changed). Flows written by hand or by tools that use the palette name
carry ``"type": "filter"``; they run the same node with the same fields."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from edge_runner.contract import NodeConfig, NodeSpec, register
from edge_runner.nodes import rbe

SPEC = replace(
    rbe.SPEC,
    type="filter",
    help=rbe.SPEC.help
    + """
`filter` is another name for Node-RED's `rbe` type (which Node-RED itself writes); both load.
""",
)


@register
class FilterNode(rbe.RbeNode):
    """Filter (alias of ``rbe``): pass a message on only when its value changed."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = rbe.Config
