"""The one validator: what a runner would reject in a flows.json, without running anything.

``validate(flows)`` is a dry run of a deploy's first phase (``Engine.prepare``): it parses the
flows (tabs, subflows, groups, environment), checks every node's configuration against its
type's pydantic ``Config`` (validators included), runs the node constructors' checks (compiled
function bodies, cron expressions, regular expressions ...) and resolves every wire. Nothing is
started: no socket is opened, no file written, no timer set, no module of a ``libs`` entry
imported. The platform calls it before it stores a flow revision or snapshots flows, so it
never signs and rolls out flows that every device would reject; ``catalog.json`` stays the
editor's schema.

Problems of severity ``error`` are exactly what makes a runner reject the deploy. ``warning``:
a disabled node or a node on a disabled tab whose configuration would be rejected once it is
enabled (the runner ignores disabled nodes); a node of a type no runner module provides (a
contrib node: the runner accepts the flows but starts none of them until a deploy without such
types, like Node-RED's "waiting for missing types"); a configuration field the node type does
not know (written by another Node-RED version: kept, ignored).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["Problem", "validate"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One reason a runner would reject (``error``) or later reject (``warning``) the flows.

    ``node_id``/``type`` are ``None`` for problems of the whole array; ``field`` is the
    configuration field's dotted path when known (``"outputs"``, ``"rules.0.t"``)."""

    node_id: str | None
    type: str | None
    message: str
    field: str | None = None
    severity: Severity = "error"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate(flows: Any, *, credentials: dict[str, dict[str, Any]] | None = None) -> list[Problem]:
    """Every problem a runner would find deploying ``flows`` (a Node-RED flows.json array;
    credentials inline as Node-RED's editor sends them, or ``credentials`` as stored, by node
    id). An empty list: a runner accepts the flows."""
    errors = _dry_run(flows, credentials)
    problems = [p for entry in errors for p in _problems(entry, "error")]
    if isinstance(flows, list):
        problems += _tolerated(flows)
    if isinstance(flows, list) and not errors:
        enabled, disabled = _all_enabled(flows)
        if disabled:
            problems += [
                p
                for entry in _dry_run(enabled, credentials)
                if entry.get("id") in disabled
                for p in _problems(entry, "warning", " (disabled now; rejected once enabled)")
            ]
    return problems


def _dry_run(flows: Any, credentials: dict[str, dict[str, Any]] | None) -> list[dict[str, Any]]:
    from edge_runner.runtime.credentials import CredentialStore
    from edge_runner.runtime.engine import DeployError, Engine
    from edge_runner.runtime.paths import RunnerPaths

    store = CredentialStore()
    store.creds = copy.deepcopy(credentials or {})
    scratch = RunnerPaths.temporary("manifold-validate-")
    try:
        Engine(credentials=store, paths=scratch).prepare(flows, "full")
    except DeployError as exc:
        return exc.errors
    finally:
        scratch.remove_all()
    return []


def _tolerated(flows: list[Any]) -> list[Problem]:
    """What the runner accepts but does not run or read: missing types, unknown fields, wires
    to nodes that are not in the flows."""
    from edge_runner.contract import COMMON_KEYS, unknown_fields
    from edge_runner.runtime.engine import Engine
    from edge_runner.runtime.flows import parse_flows

    engine = Engine()
    missing = set(engine.missing_types(flows, parse_flows(flows, engine.global_env)))
    ids = {n.get("id") for n in flows if isinstance(n, dict)}
    problems: list[Problem] = []
    for node in flows:
        kind = node.get("type") if isinstance(node, dict) else None
        if not isinstance(kind, str):
            continue
        node_id = node.get("id") if isinstance(node.get("id"), str) else None
        problems.extend(
            Problem(
                node_id, kind, f"wired to {target!r}, which is not in the flows", "wires", "warning"
            )
            for target in _wire_targets(node)
            if target not in ids
        )
        if kind in missing:
            text = (
                f"unknown node type {kind!r}: the flows are accepted but not started "
                "(waiting for missing types)"
            )
            problems.append(Problem(node_id, kind, text, None, "warning"))
            continue
        cls = engine.node_class(kind) if not kind.startswith("subflow:") else None
        if cls is None:
            continue
        fields = {k: v for k, v in node.items() if k not in COMMON_KEYS}
        migrate = getattr(cls, "migrate", None)
        try:
            fields = migrate(fields) if callable(migrate) else fields
        except (ValueError, TypeError):
            continue  # reported as an error by the dry run
        for name in unknown_fields(cls.Config, fields):
            text = f"unknown field {name!r}: kept, ignored by the runner"
            problems.append(Problem(node_id, kind, text, name, "warning"))
    return problems


def _wire_targets(node: dict[str, Any]) -> list[str]:
    wires = node.get("wires")
    if not isinstance(wires, list):
        return []
    return [t for port in wires if isinstance(port, list) for t in port if isinstance(t, str)]


def _problems(entry: dict[str, Any], severity: Severity, suffix: str = "") -> list[Problem]:
    node_id, node_type = entry.get("id"), entry.get("type")
    fields = entry.get("fields")
    if isinstance(fields, list) and fields:
        return [
            Problem(node_id, node_type, f"{f['message']}{suffix}", f["path"] or None, severity)
            for f in fields
        ]
    return [Problem(node_id, node_type, f"{entry.get('error')}{suffix}", None, severity)]


def _all_enabled(flows: list[Any]) -> tuple[list[Any], set[str]]:
    """The flows with every node and tab enabled, and the ids that were disabled."""
    disabled_tabs = {
        n["id"]
        for n in flows
        if isinstance(n, dict) and n.get("type") == "tab" and n.get("disabled") is True
    }
    disabled: set[str] = set()
    enabled: list[Any] = []
    for node in flows:
        if isinstance(node, dict) and (node.get("d") is True or node.get("z") in disabled_tabs):
            disabled.add(str(node.get("id")))
            node = {k: v for k, v in node.items() if k != "d"}
        if isinstance(node, dict) and node.get("id") in disabled_tabs:
            node = {**node, "disabled": False}
        enabled.append(node)
    return enabled, disabled
