"""Flow validation on the platform: the runner's own validator, so the platform never stores,
snapshots or rolls out flows that every device would reject (``catalog.json`` stays the
editor's schema; STYLE rule 11: one validator the platform and the runner share).

The editor and the snapshot services call ``flows_validate`` before they store flows.
"""

from __future__ import annotations

from typing import Any

from edge_runner.validate import Problem, validate

__all__ = ["MAX_NODES", "Problem", "flows_valid", "flows_validate"]

# A flows.json of tens of thousands of nodes is real; more is a mistake or an attack, and the
# dry run costs CPU per node.
MAX_NODES = 50_000


def flows_validate(flows: list[Any]) -> list[Problem]:
    """Every problem a runner would find deploying ``flows`` (errors reject the deploy,
    warnings concern disabled nodes). The flows carry no credentials on the platform."""
    return validate(flows)


def flows_valid(problems: list[Problem]) -> bool:
    return not any(p.severity == "error" for p in problems)
