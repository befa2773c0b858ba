"""Deploy planning: which nodes a ``full`` / ``flows`` / ``nodes`` deploy restarts.

* ``full``: every node stops, the whole new configuration starts.
* ``flows``: every node of a tab that contains a changed, added or removed node (or a changed
  wire) restarts; other tabs keep running untouched.
* ``nodes``: only changed, added and removed nodes restart; nodes whose only change is their
  wiring are rewired in place.

A node has *changed* when its configuration (including its environment chain and credentials)
differs, or when a config node it references changed (Node-RED restarts users of a changed
config node too). Editor positions (x, y) are not changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_runner.runtime.flows import FlowModel, NodeDef

DEPLOY_KINDS = ("full", "flows", "nodes")


@dataclass
class Plan:
    restart: set[str] = field(default_factory=set)  # ids in the new model to (re)build and start
    stop: set[str] = field(default_factory=set)  # ids in the old model to stop
    changed_tabs: set[str] = field(default_factory=set)


def _references(raw: dict[str, Any], ids: set[str]) -> bool:
    for key, value in raw.items():
        if key in {"id", "z", "g", "wires", "type"}:
            continue
        if isinstance(value, str) and value in ids:
            return True
        if isinstance(value, list) and any(isinstance(v, str) and v in ids for v in value):
            return True
    return False


def plan_deploy(
    kind: str,
    old: dict[str, NodeDef],
    new: FlowModel,
    old_creds: dict[str, dict[str, Any]],
    new_creds: dict[str, dict[str, Any]],
    is_config: Callable[[str], bool] = lambda _type: True,
) -> Plan:
    """``is_config(type)`` tells config node types apart: only their users restart with them."""
    plan = Plan()
    if kind == "full" or not old:
        plan.restart = set(new.nodes)
        plan.stop = set(old)
        return plan
    changed: set[str] = set()
    rewired: set[str] = set()
    for node_id, definition in new.nodes.items():
        before = old.get(node_id)
        if (
            before is None
            or not before.same_config(definition)
            or old_creds.get(node_id) != new_creds.get(node_id)
        ):
            changed.add(node_id)
        elif before.wires() != definition.wires():
            rewired.add(node_id)
    removed = set(old) - set(new.nodes)
    # users of a changed or removed config node restart with it
    touched = {i for i in changed if is_config(new.nodes[i].type)} | {
        i for i in removed if is_config(old[i].type)
    }
    if touched:
        for node_id, definition in new.nodes.items():
            if node_id not in changed and _references(definition.raw, touched):
                changed.add(node_id)
    if kind == "nodes":
        plan.restart = changed
        plan.stop = (changed & set(old)) | removed
        return plan
    tabs = {new.nodes[i].tab for i in changed | rewired} | {old[i].tab for i in removed}
    plan.changed_tabs = tabs
    plan.restart = {i for i, d in new.nodes.items() if d.tab in tabs} | changed
    plan.stop = {i for i, d in old.items() if d.tab in tabs} | (changed & set(old)) | removed
    return plan
