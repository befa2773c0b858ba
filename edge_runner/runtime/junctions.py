"""Junctions (Node-RED 3+) cost nothing at run time: they are wired through at deploy time.

A junction is a wiring point on the canvas: every message into it goes, unchanged, to every
node wired from it. ``wire_through`` replaces each wire to a junction by the junction's own
targets (junctions wired to junctions are followed, a loop of junctions ends where it closes)
and drops the junctions from the nodes to run, so a message crosses no extra hop. It runs on
the expanded model, so junctions inside subflows, on subflow ports and behind ``link in``
nodes are resolved like any other. A junction's wire to a node that is not in the flows is
dropped later like any other such wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_runner.runtime.flows import FlowModel

JUNCTION_TYPE = "junction"


def wire_through(model: FlowModel) -> None:
    """Rewire every node of ``model`` past its junctions and remove them from ``model.nodes``
    (their ids stay in ``model.known``: a wire to one is never "missing")."""
    junctions = {i: d for i, d in model.nodes.items() if d.raw["type"] == JUNCTION_TYPE}
    if not junctions:
        return
    reached: dict[str, list[str]] = {}

    def targets_of(junction_id: str) -> list[str]:
        if junction_id not in reached:
            out: list[str] = []
            reached[junction_id] = out  # a loop back to this junction adds nothing
            for port in junctions[junction_id].wires()[:1]:
                out.extend(through(port))
        return reached[junction_id]

    def through(port: list[str]) -> list[str]:
        # No deduplication: a node wired to B directly and through a junction gets two
        # deliveries in Node-RED too.
        return [final for t in port for final in (targets_of(t) if t in junctions else [t])]

    for node_id in junctions:
        del model.nodes[node_id]
    for definition in model.nodes.values():
        wires = definition.wires()
        if not any(t in junctions for port in wires for t in port):
            continue
        definition.raw = {**definition.raw, "wires": [through(port) for port in wires]}
