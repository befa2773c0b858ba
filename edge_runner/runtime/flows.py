"""The flow model: a flows.json array turned into the set of nodes the engine runs.

``parse_flows`` resolves everything Node-RED resolves before any node is created:

* tabs (``disabled`` tabs contribute nothing), groups (nested via ``g``), config nodes; a node
  whose ``z`` names no tab nor subflow gets an implicit tab of that id, as in Node-RED's
  runtime (exports of a config node keep the ``z`` of a tab that was not exported);
* ``global-config`` (Node-RED 3+): its ``env`` entries are global environment variables, seen by
  every tab before the process environment;
* disabled nodes (``d: true``) are dropped and wires to them are ignored;
* subflow instances (``type: "subflow:<id>"``) are expanded into namespaced copies of the
  subflow's nodes (``<instance id>.<node id>``, recursively for nested subflows); the instance
  itself stays as a small pass-through node whose outputs are wired to the copies;
* environment scopes: node -> group chain -> subflow instance -> tab -> global, with
  Node-RED's built-ins (``NR_NODE_ID``, ``NR_GROUP_ID``, ``NR_FLOW_NAME``, ``NR_SUBFLOW_ID`` ...),
  evaluated as ``env.py`` describes (``cred`` entries from ``credentials``);
* whole-string ``${VAR}`` / ``$(VAR)`` config values replaced by the variable's value, the way
  Node-RED's ``mapEnvVarProperties`` does (embedded references are left to ``env`` typed inputs:
  Node-RED leaves them too, and code and templates routinely contain ``${`` literally);
* a subflow's status output feeds a hidden ``subflow-status`` node (``<instance>:status``) that
  sets the instance's status badge.

Problems are collected per node (``{"id", "type", "error"}``) rather than raised one by one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from edge_runner.contract import COMMON_KEYS
from edge_runner.runtime import junctions
from edge_runner.runtime.env import (  # noqa: F401  # EnvScope and GlobalEnv re-exported
    EnvScope,
    GlobalEnv,
    evaluate_env_list,
    has_reference,
    substitute_config,
)

SUBFLOW_PREFIX = "subflow:"
T = TypeVar("T")
MAX_SUBFLOW_DEPTH = 16
MAX_PORTS = 1000  # outputs of one node; Node-RED's editor offers far fewer


def _err(raw: dict[str, Any], text: str) -> dict[str, Any]:
    return {"id": raw.get("id"), "type": raw.get("type"), "error": text}


def _reporter(errors: list[dict[str, Any]], owner: dict[str, Any]) -> Callable[[str], None]:
    return lambda text: errors.append(_err(owner, text))


_NOT_CONFIG = frozenset({"wires", "x", "y", "w", "h", "credentials"})


@dataclass
class NodeDef:
    """One node the engine will run, after expansion and substitution."""

    id: str
    raw: dict[str, Any]  # the node object with ids mapped and env substituted
    z: str  # flow scope: the tab id, or the subflow instance id for copies
    tab: str  # the top-level tab
    env: EnvScope  # the scope the node's own env lookups start from (group/instance/tab)
    path: str  # Node-RED's node path, e.g. "t1/inst1"
    alias: str = ""  # the original id inside the subflow definition
    instance: str = ""  # the enclosing subflow instance id, if any
    _signature: str | None = None

    @property
    def type(self) -> str:
        return str(self.raw["type"])

    def signature(self) -> str:
        """Everything that makes the node restart when it changes: config and env, not wires,
        editor position or credentials (compared separately)."""
        if self._signature is None:
            own = {k: v for k, v in self.raw.items() if k not in _NOT_CONFIG}
            self._signature = json.dumps(own, sort_keys=True, default=repr) + self.env.fingerprint()
        return self._signature

    def same_config(self, other: NodeDef) -> bool:
        """``signature() == other.signature()``, without serialising: dict equality in C."""
        if self._signature is not None and other._signature is not None:
            return self._signature == other._signature
        mine, theirs = self.raw, other.raw
        for key, value in mine.items():
            if key not in _NOT_CONFIG and (key not in theirs or theirs[key] != value):
                return False
        if any(key not in _NOT_CONFIG and key not in mine for key in theirs):
            return False
        return self.env is other.env or self.env.fingerprint() == other.env.fingerprint()

    def wires(self) -> list[list[str]]:
        wires = self.raw.get("wires") or []
        return [list(port) if isinstance(port, list) else [] for port in wires]


@dataclass
class FlowModel:
    """A parsed flows.json: the runnable nodes plus the structure around them."""

    tabs: dict[str, dict[str, Any]] = field(default_factory=dict)
    subflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, NodeDef] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)  # every id in the array (incl. disabled)
    instances: set[str] = field(default_factory=set)
    errors: list[dict[str, Any]] = field(default_factory=list)
    tab_env: dict[str, EnvScope] = field(default_factory=dict)
    global_env: EnvScope | None = None  # the process environment + the global-config's env
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)


GLOBAL_CONFIG = "global-config"
_STRUCTURE_TYPES = frozenset({"tab", "subflow", "group", GLOBAL_CONFIG})


def _shape_error(raw: dict[str, Any]) -> str:
    """What is wrong with the shape of a node's structural keys (Node-RED writes strings and
    lists of lists there; anything else would crash the lookups that follow)."""
    for key in ("z", "g"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            return f"{key} must be a string id, got {type(raw[key]).__name__}"
    wires = raw.get("wires")
    if wires is not None and not (
        isinstance(wires, list)
        and all(isinstance(port, list) and all(isinstance(t, str) for t in port) for port in wires)
    ):
        return "wires must be a list of lists of node ids"
    return ""


def parse_flows(
    flows: Any, global_env: EnvScope, credentials: dict[str, dict[str, Any]] | None = None
) -> FlowModel:
    """Build the flow model; structural problems end up in ``model.errors``. ``credentials``
    (id -> values) feed ``cred`` env entries of tabs, groups and subflow instances."""
    model = FlowModel(credentials=credentials or {})
    if not isinstance(flows, list):
        model.errors.append({"id": None, "type": None, "error": "flows must be a JSON array"})
        return model
    plain: list[dict[str, Any]] = []
    for index, raw in enumerate(flows):
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("id"), str)
            or not raw["id"]
            or not isinstance(raw.get("type"), str)
            or not raw["type"]
        ):
            ident = raw.get("id") if isinstance(raw, dict) else None
            model.errors.append(
                {
                    "id": ident if isinstance(ident, str) else None,
                    "type": None,
                    "error": f"item {index}: every node needs a string id and type",
                }
            )
            continue
        if raw["id"] in model.known:
            model.errors.append(_err(raw, "duplicate node id"))
            continue
        shape_error = _shape_error(raw)
        if shape_error:
            model.errors.append(_err(raw, shape_error))
            continue
        model.known.add(raw["id"])
        kind = raw["type"]
        if kind == "tab":
            model.tabs[raw["id"]] = raw
        elif kind == "subflow":
            model.subflows[raw["id"]] = raw
        elif kind == "group":
            model.groups[raw["id"]] = raw
        plain.append(raw)
    for raw in plain:
        z = raw.get("z") or ""
        implicit = z and z not in model.tabs and z not in model.subflows
        if implicit and raw["type"] not in _STRUCTURE_TYPES:
            model.tabs[z] = {"id": z, "type": "tab", "label": ""}
    global_env = model.global_env = _global_scope(model, plain, global_env)

    for tab_id, tab in model.tabs.items():
        scope_vars = evaluate_env_list(
            tab.get("env"),
            global_env,
            "flow",
            _reporter(model.errors, tab),
            model.credentials.get(tab_id),
        )
        scope_vars.setdefault("NR_FLOW_ID", tab_id)
        scope_vars.setdefault("NR_FLOW_NAME", str(tab.get("label") or ""))
        model.tab_env[tab_id] = EnvScope(scope_vars, global_env)

    by_subflow: dict[str, list[dict[str, Any]]] = {sf: [] for sf in model.subflows}
    group_scopes: dict[str, EnvScope] = {}
    for raw in plain:
        if raw["type"] in _STRUCTURE_TYPES:
            continue
        z = raw.get("z") or ""
        if z in model.subflows:
            by_subflow[z].append(raw)
            continue
        if raw.get("d") is True:
            continue
        tab_raw = model.tabs.get(z)
        if tab_raw is not None and tab_raw.get("disabled") is True:
            continue
        parent = model.tab_env.get(z, global_env)
        scope = _group_scope(model, raw.get("g"), parent, group_scopes, model.errors)
        _add_node(model, raw, z, z, scope, z, "", by_subflow, 0)
    junctions.wire_through(model)
    return model


def _global_scope(model: FlowModel, plain: list[dict[str, Any]], parent: EnvScope) -> EnvScope:
    variables: dict[str, Any] = {}
    for raw in plain:
        if raw["type"] == GLOBAL_CONFIG and raw.get("d") is not True:
            variables.update(
                evaluate_env_list(
                    raw.get("env"),
                    parent,
                    "global",
                    _reporter(model.errors, raw),
                    model.credentials.get(raw["id"]),
                )
            )
    return EnvScope(variables, parent) if variables else parent


def _group_scope(
    model: FlowModel,
    group_id: Any,
    parent: EnvScope,
    cache: dict[str, EnvScope],
    errors: list[dict[str, Any]],
    depth: int = 0,
) -> EnvScope:
    if not isinstance(group_id, str) or group_id not in model.groups or depth > 32:
        return parent
    key = f"{group_id}@{id(parent)}"
    if key in cache:
        return cache[key]
    group = model.groups[group_id]
    outer = _group_scope(model, group.get("g"), parent, cache, errors, depth + 1)
    variables = evaluate_env_list(
        group.get("env"),
        outer,
        "group",
        _reporter(errors, group),
        model.credentials.get(group_id),
    )
    variables.setdefault("NR_GROUP_ID", group_id)
    variables.setdefault("NR_GROUP_NAME", str(group.get("name") or ""))
    cache[key] = scope = EnvScope(variables, outer)
    return scope


def _add_node(
    model: FlowModel,
    raw: dict[str, Any],
    z: str,
    tab: str,
    scope: EnvScope,
    path: str,
    instance: str,
    by_subflow: dict[str, list[dict[str, Any]]],
    depth: int,
    alias: str = "",
) -> None:
    kind = raw["type"]
    # most nodes reference no variable at all: keep their object as it is (no copy)
    node_raw = raw
    if any(has_reference(v) for k, v in raw.items() if k not in COMMON_KEYS):
        own = {
            "NR_NODE_ID": raw["id"],
            "NR_NODE_NAME": str(raw.get("name") or ""),
            "NR_NODE_PATH": f"{path}/{raw['id']}" if path else raw["id"],
        }
        node_scope = EnvScope(own, scope)
        node_raw = {
            k: (v if k in COMMON_KEYS else substitute_config(v, node_scope, k))
            for k, v in raw.items()
        }
    model.nodes[raw["id"]] = NodeDef(raw["id"], node_raw, z, tab, scope, path, alias, instance)
    if kind.startswith(SUBFLOW_PREFIX):
        _expand_instance(model, model.nodes[raw["id"]], by_subflow, depth)


def _expand_instance(
    model: FlowModel, inst: NodeDef, by_subflow: dict[str, list[dict[str, Any]]], depth: int
) -> None:
    sf_id = inst.type[len(SUBFLOW_PREFIX) :]
    sf = model.subflows.get(sf_id)
    if sf is None:
        model.errors.append(_err(inst.raw, f"unknown subflow {sf_id!r}"))
        return
    if depth >= MAX_SUBFLOW_DEPTH:
        model.errors.append(_err(inst.raw, "subflows nested too deeply (recursive subflow?)"))
        return
    model.instances.add(inst.id)
    # The instance's properties replace the definition's entries of the same name; the merged
    # list is evaluated once, so entries of either may refer to each other.
    merged: dict[Any, Any] = {}
    for source in (sf.get("env"), inst.raw.get("env")):
        if isinstance(source, list):
            for entry in source:
                name = entry.get("name") if isinstance(entry, dict) else None
                merged[name if isinstance(name, str) else id(entry)] = entry
        elif source not in (None, ""):
            merged[id(source)] = source  # reported as malformed below
    creds = {**model.credentials.get(sf_id, {}), **model.credentials.get(inst.id, {})}
    variables = evaluate_env_list(
        list(merged.values()), inst.env, "subflow", _reporter(model.errors, inst.raw), creds
    )
    variables.setdefault("NR_SUBFLOW_ID", inst.id)
    variables.setdefault("NR_SUBFLOW_NAME", str(inst.raw.get("name") or sf.get("name") or ""))
    path = f"{inst.path}/{inst.id}" if inst.path else inst.id
    variables.setdefault("NR_SUBFLOW_PATH", path)
    scope = EnvScope(variables, inst.env)

    members = [m for m in by_subflow.get(sf_id, []) if m.get("d") is not True]
    id_map = {m["id"]: f"{inst.id}.{m['id']}" for m in members}
    external = inst.wires()
    out_ports = _list(sf.get("out"))
    status_id = ""
    status = sf.get("status")
    if isinstance(status, dict):
        # Messages on the status output set the instance's status badge (Node-RED has no
        # instance port for it): a hidden "subflow-status" node receives them.
        status_id = f"{inst.id}:status"
        out_ports.append(status)
    # Where each internal (node, port) must also send, because the subflow output it feeds
    # leads to the instance's external targets.
    extra: dict[tuple[str, int], list[str]] = {}
    passthrough: list[str] = []
    for k, port in enumerate(out_ports):
        if status_id and k == len(out_ports) - 1:
            targets = [status_id]
        else:
            targets = external[k] if k < len(external) else []
        for source in _list(port.get("wires") if isinstance(port, dict) else None):
            if not isinstance(source, dict):
                continue
            port_no = source.get("port") or 0
            if source.get("id") == sf_id:  # input wired straight to this output
                passthrough.extend(targets)
            elif isinstance(port_no, int) and 0 <= port_no < MAX_PORTS:
                extra.setdefault((str(source.get("id")), port_no), []).extend(targets)
            else:
                model.errors.append(
                    _err(sf, f"output {k + 1} is wired from port {port_no!r} of a node")
                )
    entries: list[str] = []
    for port in _list(sf.get("in")):
        for target in _list(port.get("wires") if isinstance(port, dict) else None):
            if isinstance(target, dict) and target.get("id") in id_map:
                entries.append(id_map[target["id"]])
    # The instance forwards its input to the entry nodes (and straight through, if wired so).
    inst.raw = {**inst.raw, "wires": [entries + passthrough]}
    inst._signature = None
    group_cache: dict[str, EnvScope] = {}
    for member in members:
        copy = {
            k: _remap(v, id_map) if k not in {"id", "wires", "z", "g"} else v
            for k, v in member.items()
        }
        copy["id"] = id_map[member["id"]]
        copy["z"] = inst.id
        copy["_alias"] = member["id"]
        wires = [list(p) if isinstance(p, list) else [] for p in member.get("wires") or []]
        mapped = [[id_map[t] for t in p if t in id_map] for p in wires]
        for (source, port_no), targets in extra.items():
            if source == member["id"]:
                while len(mapped) <= port_no:
                    mapped.append([])
                mapped[port_no].extend(targets)
        copy["wires"] = mapped
        member_scope = _group_scope(model, member.get("g"), scope, group_cache, model.errors)
        _add_node(
            model,
            copy,
            inst.id,
            inst.tab,
            member_scope,
            path,
            inst.id,
            by_subflow,
            depth + 1,
            alias=member["id"],
        )
    model.known.update(id_map.values())
    if status_id:
        status_raw = {"id": status_id, "type": "subflow-status", "z": inst.id, "wires": []}
        model.nodes[status_id] = NodeDef(
            status_id, status_raw, inst.id, inst.tab, scope, path, "", inst.id
        )
        model.known.add(status_id)


def _list(value: Any) -> list[Any]:
    """A subflow's port list as written; any other shape wires nothing (and cannot crash)."""
    return value if isinstance(value, list) else []


def _remap(value: Any, id_map: dict[str, str]) -> Any:
    """Internal references (config nodes, link targets, catch scopes) follow the copies."""
    if isinstance(value, str):
        return id_map.get(value, value)
    if isinstance(value, list):
        return [_remap(v, id_map) for v in value]
    return value


def resolve_wires(
    model: FlowModel, nodes: dict[str, T | None], errors: list[dict[str, Any]]
) -> dict[str, list[list[T]]]:
    """Each node's wires as lists of the (future) running nodes. A wire to an id that is not in
    the flows (hand-edited or partially copied exports have them) or to a disabled node is
    dropped, as Node-RED's runtime drops messages sent to a node it does not have (``parse_flows``
    has already refused wires that are not ids)."""
    wiring: dict[str, list[list[T]]] = {}
    for node_id, definition in model.nodes.items():
        if nodes.get(node_id) is None:
            continue
        wires = definition.raw.get("wires") or []
        if not isinstance(wires, list):
            errors.append(_err(definition.raw, "wires must be a list of lists of node ids"))
            continue
        resolved: list[list[T]] = []
        for port in wires:
            targets: list[T] = []
            if not isinstance(port, list):
                errors.append(_err(definition.raw, "each wires entry must be a list of node ids"))
                port = []
            for target_id in port:
                target = nodes.get(target_id) if isinstance(target_id, str) else None
                if target is not None:
                    targets.append(target)
            resolved.append(targets)
        wiring[node_id] = resolved
    return wiring
