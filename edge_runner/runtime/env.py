"""Environment variables of flows: scopes, ``env`` lists and config-time substitution.

Restates Node-RED's ``getSetting`` chain and ``evaluateEnvProperties``:

* Scopes chain node -> group(s) -> subflow instance -> tab -> global (the engine's variables,
  then the process environment). A name starting with ``$parent.`` skips the scope it is asked
  of and continues in the parent (``$parent.$parent.X`` skips two).
* An ``env`` list (tab, group, subflow definition + instance) is evaluated once at deploy:
  ``str``, ``num``, ``bool`` (exactly ``"true"``), ``json``, ``bin``, ``date``; ``cred`` takes the
  owner's credential of that name; ``jsonata`` is evaluated with ``$env()`` reading the parent
  scope; ``env`` entries are evaluated last, so they may refer to any sibling, and an entry
  naming itself reads the parent's variable of that name.
* Config values that are exactly ``${VAR}`` or ``$(VAR)`` are replaced by the variable's
  (typed) value at deploy, like Node-RED's ``mapEnvVarProperties``; an undefined or empty
  variable leaves the text as written. Node-RED does not substitute references embedded in
  longer strings at deploy -- ``env`` typed inputs do that when evaluated (``typed.py``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from typing import Any

from edge_runner.runtime.typed import evaluate_env_reference, to_number

PARENT = "$parent."
_WHOLE_ENV = re.compile(r"^(?:\$\{(\S+)\}|\$\((\S+)\))$")
_MISSING: Any = object()
KEEP_CREDENTIAL = "__PWRD__"  # the editor's placeholder, not a secret
# Fields that are code or templates: never rewritten by config-time env substitution.
VERBATIM_FIELDS = frozenset({"func", "initialize", "finalize", "template", "info"})


class EnvScope:
    """One level of environment variables with a parent; ``get`` walks up to the global level."""

    __slots__ = ("_fingerprint", "parent", "vars")

    def __init__(self, variables: dict[str, Any], parent: EnvScope | None = None) -> None:
        self.vars = variables
        self.parent = parent
        self._fingerprint: str | None = None

    def get(self, name: str, default: Any = None) -> Any:
        scope: EnvScope | None = self
        while scope is not None:
            if name.startswith(PARENT):
                name = name[len(PARENT) :]
                scope = scope.parent
                continue
            if isinstance(scope, GlobalEnv):
                return scope.get(name, default)
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        return default

    def fingerprint(self) -> str:
        """Identity of the whole chain's values: a node restarts when it changes."""
        if self._fingerprint is None:
            own = json.dumps(self.vars, sort_keys=True, default=repr)
            self._fingerprint = own + "|" + (self.parent.fingerprint() if self.parent else "")
        return self._fingerprint


class GlobalEnv(EnvScope):
    """The top scope: the engine's configured variables, then the process environment."""

    def get(self, name: str, default: Any = None) -> Any:
        while name.startswith(PARENT):  # nothing above the top: the name itself
            name = name[len(PARENT) :]
        if name in self.vars:
            return self.vars[name]
        return os.environ.get(name, default)

    def fingerprint(self) -> str:
        return json.dumps(self.vars, sort_keys=True, default=repr)


Problem = Callable[[str], None]


def evaluate_env_list(
    entries: Any,
    parent: EnvScope,
    where: str,
    problem: Problem,
    credentials: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate a Node-RED ``env`` list (``[{name, value, type}]``) against its parent scope;
    ``problem(text)`` reports an entry that cannot be used."""
    out: dict[str, Any] = {}
    if entries in (None, ""):
        return out
    if not isinstance(entries, list):
        problem(f"{where} env must be a list of {{name, value, type}}")
        return out
    deferred: list[tuple[str, Any]] = []

    def lookup(name: str) -> Any:
        if name in out:
            return out[name]
        return parent.get(name[len(PARENT) :] if name.startswith(PARENT) else name)

    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problem(f"{where} env entry without a name: {entry!r}"[:200])
            continue
        name, vtype, value = entry["name"], entry.get("type") or "str", entry.get("value")
        if vtype == "env":  # after the others: they may be what it refers to
            deferred.append((name, value))
            continue
        try:
            out[name] = _env_value(name, value, vtype, parent.get, credentials or {})
        except (ValueError, TypeError) as exc:
            problem(f"{where} env {name!r}: {exc}")
    for name, value in deferred:
        reference = "" if value is None else str(value)
        if reference == name:  # a variable defined as itself means the parent's one
            reference = PARENT + name
        out[name] = evaluate_env_reference(reference, lookup)
    return out


def _env_value(
    name: str,
    value: Any,
    vtype: str,
    parent_lookup: Callable[[str], Any],
    credentials: dict[str, Any],
) -> Any:
    if vtype == "str":
        return "" if value is None else str(value)
    if vtype == "num":
        return to_number(value)
    if vtype == "bool":
        return value is True or value == "true"
    if vtype == "json":
        try:
            return json.loads(value) if isinstance(value, str) else value
        except ValueError as exc:
            raise ValueError(f"invalid JSON: {exc}") from exc
    if vtype == "bin":
        data = json.loads(value) if isinstance(value, str) else value
        return data.encode() if isinstance(data, str) else bytes(int(b) & 0xFF for b in data or [])
    if vtype == "cred":
        if name in credentials:
            return credentials[name]
        return "" if value in (None, KEEP_CREDENTIAL) else value
    if vtype == "date":
        return int(time.time() * 1000)
    if vtype == "jsonata":  # like Node-RED, $env() sees the parent scope, not the siblings
        return _env_jsonata(str(value or ""), parent_lookup)
    return "" if value is None else value  # re, node, conf types: kept as written


def _env_jsonata(expression: str, lookup: Callable[[str], Any]) -> Any:
    from edge_runner.contract import NodeFailed
    from edge_runner.runtime.typed import compile_jsonata, jsonata_function

    try:
        compiled = compile_jsonata(expression)
        frame = compiled.create_frame()
        frame.bind("env", jsonata_function(lambda key: lookup(str(key))))
        return compiled.evaluate(None, frame)
    except NodeFailed as exc:
        raise ValueError(str(exc)) from exc
    except Exception as exc:  # the library raises its own exception classes
        raise ValueError(f"JSONata error in {expression!r}: {exc}") from exc


def substitute_config(value: Any, env: EnvScope, key: str = "") -> Any:
    """Replace whole-string ``${VAR}``/``$(VAR)`` values, recursing into lists and objects."""
    if isinstance(value, str):
        if not value.startswith("$") or key in VERBATIM_FIELDS:
            return value
        match = _WHOLE_ENV.match(value)
        if match is None:
            return value
        found = env.get(match.group(1) or match.group(2), _MISSING)
        return value if found is _MISSING or found is None or found == "" else found
    if isinstance(value, list):
        return [substitute_config(v, env) for v in value]
    if isinstance(value, dict):
        return {k: substitute_config(v, env, k) for k, v in value.items()}
    return value


def has_reference(value: Any) -> bool:
    """Whether ``substitute_config`` could change ``value`` (a string starting with ``$``)."""
    if isinstance(value, str):
        return value.startswith("$")
    if isinstance(value, list):
        return any(has_reference(v) for v in value)
    if isinstance(value, dict):
        return any(has_reference(v) for v in value.values())
    return False
