"""Lazy loading of node modules: import only the node types a deployed flow uses.

Importing every module of ``edge_runner.nodes`` (one pydantic model per type, ~45 types) costs
a few hundred milliseconds and several MiB, which counts against the runner's startup time and
idle memory. ``edge_runner/nodes/_index.json`` maps each node type to its module; it is
generated with ``catalog.json`` by ``python -m edge_runner.catalog`` (and ``--check`` fails
when it is stale). ``node_class(registry, type)`` imports the module the index names. A type
the index does not know (a stale or missing index, a new module) makes it import every node
module once, so an out-of-date index costs time, never correctness; a type nobody registers is
still unknown and the deploy rejects that node.

``WarmUp`` (``Engine.warm_up()``, called by the standalone server once it listens) imports the
indexed modules in the background, one per event-loop turn, so a runner that starts fast still
deploys its first large flow without paying for the imports then. When it is done, and no
flow is running yet, it moves everything loaded so far into the collector's permanent
generation (``gc.freeze()``).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path

from edge_runner.contract import REGISTRY, Node, Registry

log = logging.getLogger("edge_runner.engine")

NODES_PACKAGE = "edge_runner.nodes"
INDEX_PATH = Path(__file__).resolve().parent.parent / "nodes" / "_index.json"
INDEX_VERSION = 1

# Process-wide on purpose: these describe imported modules and immutable node classes, which
# Python shares per process anyway. What runs (the node instances, their connections, routes
# and watchdog) is per engine: ``Engine.nodes`` and ``Engine.services``.
FAILED_NODE_MODULES: dict[str, str] = {}  # module -> error, for diagnostics
_state = {"all_loaded": False}
_index: dict[str, str] | None = None


def node_index() -> dict[str, str]:
    """type -> module from ``_index.json`` ({} when the file is missing or unusable). Only
    modules inside ``edge_runner.nodes`` are accepted: the index never imports anything else."""
    global _index
    if _index is None:
        found: dict[str, str] = {}
        try:
            data = json.loads(INDEX_PATH.read_text("utf-8"))
            types = data.get("types") if isinstance(data, dict) else None
            if isinstance(types, dict):
                found = {
                    str(key): value
                    for key, value in types.items()
                    if isinstance(value, str) and value.startswith(NODES_PACKAGE + ".")
                }
        except (OSError, ValueError) as exc:
            log.info("node index %s unusable (%s); loading every node module", INDEX_PATH, exc)
        _index = found
    return _index


def build_index(registry: Registry = REGISTRY) -> dict[str, object]:
    """The index document for the node types registered from ``edge_runner.nodes``."""
    types = {
        cls.SPEC.type: cls.__module__
        for cls in registry
        if cls.__module__.startswith(NODES_PACKAGE + ".")
    }
    return {"index_version": INDEX_VERSION, "types": dict(sorted(types.items()))}


def import_node_module(name: str) -> bool:
    """Import one node module; a broken one is logged and remembered, never raised."""
    if name in sys.modules:
        return True
    if name in FAILED_NODE_MODULES:
        return False
    try:
        importlib.import_module(name)
    except Exception as exc:  # one broken node module must not take the runner down
        FAILED_NODE_MODULES[name] = f"{type(exc).__name__}: {exc}"
        log.exception("node module %s failed to import; its node types are unavailable", name)
        return False
    return True


def load_node_modules() -> None:
    """Import every module of ``edge_runner.nodes`` so their ``@register`` calls run."""
    if _state["all_loaded"]:
        return
    import edge_runner.nodes as package

    for info in pkgutil.walk_packages(package.__path__, NODES_PACKAGE + "."):
        if not info.name.rpartition(".")[2].startswith("_"):
            import_node_module(info.name)
    _state["all_loaded"] = True


def node_class(registry: Registry, type_key: str) -> type[Node] | None:
    """The class of ``type_key``, importing its module on first use (global registry only)."""
    cls = registry.get(type_key)
    if cls is not None or registry is not REGISTRY:
        return cls
    module = node_index().get(type_key)
    if module is not None and import_node_module(module):
        cls = registry.get(type_key)
    if cls is None and not _state["all_loaded"]:
        load_node_modules()
        cls = registry.get(type_key)
    return cls


def unavailable_reason(type_key: str) -> str:
    """Why ``type_key`` cannot be used: unknown, or its module failed to import."""
    module = node_index().get(type_key)
    if module is not None and module in FAILED_NODE_MODULES:
        return f"node type {type_key!r} is unavailable: {FAILED_NODE_MODULES[module]}"
    return f"unknown node type {type_key!r}"


class WarmUp:
    """Imports the indexed node modules in the background, one per loop turn, so the first
    deploy finds them loaded while startup (spawn -> listening) paid for none of them."""

    def __init__(self, pause: float = 0.002, may_freeze: Callable[[], bool] = lambda: True) -> None:
        self.pause = pause
        self.may_freeze = may_freeze
        self.pending: list[str] = []
        self.handle: asyncio.TimerHandle | None = None

    def start(self, delay: float = 0.25) -> None:
        if self.handle is not None or _state["all_loaded"]:
            return
        self.pending = sorted(set(node_index().values()) - set(sys.modules))
        self.handle = asyncio.get_running_loop().call_later(delay, self._step)

    def _step(self) -> None:
        # One module per turn: requests and messages wait for one import at most.
        if self.pending:
            import_node_module(self.pending.pop(0))
        if self.pending:
            self.handle = asyncio.get_running_loop().call_later(self.pause, self._step)
            return
        self.handle = None
        # Modules, classes and functions live as long as the process: moving them out of the
        # collector's generations (once, while idle) keeps full collections -- which a large
        # deploy triggers -- from scanning ~70 000 objects that can never be garbage. Only
        # while no flow runs: frozen flow nodes would never be collected after a redeploy.
        if self.may_freeze():
            gc.collect()
            gc.freeze()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.pending = []
