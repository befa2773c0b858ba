"""The flow engine: loads a Node-RED flows.json array, builds the nodes, routes messages.

Dispatch: a message sent to a node whose ``on_message`` is a plain method is handled by calling
it directly (no event-loop turn per hop), up to ``MAX_DEPTH`` nested hops; deeper chains and
loops continue from a ready-queue drained on the next loop turn, so a wire loop cannot blow the
stack and cannot starve the loop. Async nodes get their own bounded queue and worker task.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import pkgutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from edge_runner.contract import (
    COMMON_KEYS,
    REGISTRY,
    Msg,
    Node,
    NodeConfig,
    NodeStatus,
    Registry,
    clone_msg,
)
from edge_runner.runtime.context import Context, ContextStore
from edge_runner.runtime.node_api import NodeRuntime

log = logging.getLogger("edge_runner.engine")

MAX_DEPTH = 64
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

EventListener = Callable[[str, Any], None]


@dataclass
class DeployError(Exception):
    """A deploy was rejected; ``errors`` lists ``{"id", "type", "error"}`` per offending node."""

    errors: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{e.get('id')}: {e.get('error')}" for e in self.errors[:10])


_loaded_node_modules = False


def load_node_modules() -> None:
    """Import every module of ``edge_runner.nodes`` so their ``@register`` calls run."""
    global _loaded_node_modules
    if _loaded_node_modules:
        return
    import edge_runner.nodes as package

    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
    _loaded_node_modules = True


def node_config_fields(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in COMMON_KEYS}


class Engine:
    def __init__(self, registry: Registry | None = None, context: ContextStore | None = None,
                 env: dict[str, str] | None = None) -> None:
        if registry is None:
            load_node_modules()
            registry = REGISTRY
        self.registry = registry
        self.context = context or ContextStore()
        self.global_context = self.context.scope("global")
        self.flows: list[dict[str, Any]] = []
        self.nodes: dict[str, NodeRuntime] = {}
        self.tabs: dict[str, dict[str, Any]] = {}
        self.base_env = env or {}
        self.listeners: list[EventListener] = []
        self._depth = 0
        self._ready: deque[tuple[NodeRuntime, Msg]] = deque()
        self._drain_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.catchers: dict[str, list[NodeRuntime]] = {}
        self.status_watchers: dict[str, list[NodeRuntime]] = {}
        self.complete_watchers: dict[str, list[NodeRuntime]] = {}
        self.started_at = time.time()

    # ------------------------------------------------------------------ events
    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener) if listener in self.listeners else None

    def emit(self, topic: str, data: Any) -> None:
        for listener in list(self.listeners):
            try:
                listener(topic, data)
            except Exception:  # a broken listener must not break message flow
                log.exception("event listener failed for %s", topic)

    # ------------------------------------------------------------------ context / env
    def flow_context(self, tab_id: str) -> Context:
        return self.context.scope(f"flow:{tab_id}")

    def env(self, tab_id: str, name: str) -> Any:
        tab = self.tabs.get(tab_id)
        if tab is not None:
            for item in tab.get("env") or []:
                if isinstance(item, dict) and item.get("name") == name:
                    return item.get("value")
        if name in self.base_env:
            return self.base_env[name]
        return os.environ.get(name)

    # ------------------------------------------------------------------ dispatch
    def deliver(self, target: NodeRuntime, msg: Msg) -> None:
        if not target.started:
            return
        if target.is_async:
            target.enqueue(msg)
            return
        if self._depth >= MAX_DEPTH:
            self._ready.append((target, msg))
            self._schedule_drain()
            return
        self._depth += 1
        try:
            target.node.on_message(msg)
        except Exception as exc:  # a node that raises never stops the engine
            target.error(exc, msg)
        else:
            if target.id in self.complete_watchers:
                self.completed(target, msg)
        finally:
            self._depth -= 1

    def _schedule_drain(self) -> None:
        if self._drain_scheduled:
            return
        self._drain_scheduled = True
        loop = self._loop or asyncio.get_running_loop()
        loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        batch = len(self._ready)
        saved, self._depth = self._depth, 0
        try:
            for _ in range(batch):
                target, msg = self._ready.popleft()
                self.deliver(target, msg)
        finally:
            self._depth = saved
        if self._ready:
            self._schedule_drain()

    def completed(self, source: NodeRuntime, msg: Msg) -> None:
        for watcher in self.complete_watchers.get(source.id, ()):
            self.deliver(watcher, clone_msg(msg))

    # ------------------------------------------------------------------ reporting
    def node_status(self, rt: NodeRuntime, status: NodeStatus) -> None:
        data = status.as_dict()
        self.emit(f"status/{rt.id}", data)
        watchers = self.status_watchers.get(rt.z, ())
        for watcher in watchers:
            if watcher is rt:
                continue
            scope = getattr(watcher.node, "scope_ids", None)
            if scope is not None and rt.id not in scope:
                continue
            self.deliver(watcher, {"status": {**data, "source": self._source(rt)}})

    def node_log(self, rt: NodeRuntime, level: int, text: Any, msg: Msg | None) -> None:
        message = text if isinstance(text, str) else repr(text)
        logger = log.warning if level == 30 else log.error
        logger("[%s:%s] %s", rt.type, rt.name or rt.id, message)
        item: dict[str, Any] = {"level": level, "id": rt.id, "type": rt.type, "msg": message,
                                "z": rt.z, "path": rt.path, "timestamp": int(time.time() * 1000),
                                "format": f"string[{len(message)}]"}
        if rt.name:
            item["name"] = rt.name
        if msg is not None and "_msgid" in msg:
            item["_msgid"] = msg["_msgid"]
        self.emit("debug", item)

    def node_error(self, rt: NodeRuntime, err: Any, msg: Msg | None) -> None:
        text = str(err) if not isinstance(err, str) else err
        if isinstance(err, Exception) and not text:
            text = type(err).__name__
        self.node_log(rt, 20, text, msg)
        if msg is None:
            return
        handled = False
        for catcher in self.catchers.get(rt.z, ()):
            if catcher is rt:
                continue
            scope = getattr(catcher.node, "scope_ids", None)
            if scope is not None and rt.id not in scope:
                continue
            if getattr(catcher.node, "uncaught_only", False) and handled:
                continue
            out = clone_msg(msg)
            out["error"] = {"message": text, "source": self._source(rt)}
            self.deliver(catcher, out)
            handled = True

    @staticmethod
    def _source(rt: NodeRuntime) -> dict[str, Any]:
        source: dict[str, Any] = {"id": rt.id, "type": rt.type, "count": 1}
        if rt.name:
            source["name"] = rt.name
        return source

    # ------------------------------------------------------------------ build
    def build(self, flows: list[dict[str, Any]]) -> tuple[dict[str, NodeRuntime],
                                                          dict[str, dict[str, Any]]]:
        """Validate and construct (not start) every node; raise DeployError with all problems."""
        if not isinstance(flows, list):
            raise DeployError([{"id": None, "type": None, "error": "flows must be a JSON array"}])
        errors: list[dict[str, Any]] = []
        tabs: dict[str, dict[str, Any]] = {}
        seen: set[str] = set()
        for raw in flows:
            if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw.get("type"):
                errors.append({"id": raw.get("id") if isinstance(raw, dict) else None,
                               "type": None, "error": "every node needs a string id and a type"})
                continue
            if raw["id"] in seen:
                errors.append({"id": raw["id"], "type": raw["type"], "error": "duplicate node id"})
            seen.add(raw["id"])
            if raw["type"] == "tab":
                tabs[raw["id"]] = raw
        built: dict[str, NodeRuntime] = {}
        for raw in flows:
            if not isinstance(raw, dict) or raw.get("type") in {"tab", "group", "comment"}:
                continue
            if raw.get("type") in (None, "") or not isinstance(raw.get("id"), str):
                continue
            cls = self.registry.get(raw["type"])
            if cls is None:
                errors.append({"id": raw["id"], "type": raw["type"],
                               "error": f"unknown node type {raw['type']!r}"})
                continue
            tab = tabs.get(raw.get("z") or "")
            if raw.get("d") is True or (tab is not None and tab.get("disabled") is True):
                continue
            try:
                config = cls.Config.model_validate(node_config_fields(raw))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
                )
                errors.append({"id": raw["id"], "type": raw["type"], "error": problems})
                continue
            try:
                built[raw["id"]] = NodeRuntime(self, raw, config, cls)
            except Exception as exc:  # constructor rejected the config
                errors.append({"id": raw["id"], "type": raw["type"], "error": str(exc)})
        for rt in built.values():
            wires = rt.raw.get("wires") or []
            if not isinstance(wires, list):
                errors.append({"id": rt.id, "type": rt.type, "error": "wires must be a list"})
                continue
            resolved: list[list[NodeRuntime]] = []
            for port in wires:
                targets: list[NodeRuntime] = []
                for target_id in port if isinstance(port, list) else []:
                    if target_id in built:
                        targets.append(built[target_id])
                    elif target_id not in seen:
                        errors.append({"id": rt.id, "type": rt.type,
                                       "error": f"wired to missing node {target_id!r}"})
                resolved.append(targets)
            rt.wires = resolved
        if errors:
            raise DeployError(errors)
        return built, tabs

    # ------------------------------------------------------------------ lifecycle
    async def deploy(self, flows: list[dict[str, Any]]) -> None:
        """Full deploy: validate the new flows first (the running ones keep running if they are
        rejected), then stop every node and start the new configuration."""
        built, tabs = self.build(flows)
        await self.stop_nodes(list(self.nodes.values()))
        self.flows = flows
        self.nodes = built
        self.tabs = tabs
        await self.start_nodes(list(built.values()))

    async def start_nodes(self, nodes: list[NodeRuntime]) -> None:
        self._loop = asyncio.get_running_loop()
        ordered = sorted(nodes, key=lambda rt: 0 if rt.node_cls.SPEC.is_config else 1)
        for rt in ordered:
            rt.started = True
        for rt in ordered:
            try:
                await asyncio.wait_for(rt.node.start(), START_TIMEOUT)
            except Exception as exc:
                rt.started = rt.node_cls.SPEC.is_config
                rt.error(f"failed to start: {exc}")
                rt.status(NodeStatus("red", "ring", str(exc)[:60] or "failed to start"))

    async def stop_nodes(self, nodes: list[NodeRuntime]) -> None:
        for rt in nodes:
            rt.started = False
        ordered = sorted(nodes, key=lambda rt: 1 if rt.node_cls.SPEC.is_config else 0)
        for rt in ordered:
            if rt.worker is not None and not rt.worker.done():
                rt.worker.cancel()
            try:
                await asyncio.wait_for(rt.node.stop(), STOP_TIMEOUT)
            except Exception:
                log.exception("node %s (%s) failed to stop cleanly", rt.id, rt.type)
            if rt.last_status is not None and rt.last_status.as_dict():
                self.emit(f"status/{rt.id}", {})
            for registry in (self.catchers, self.status_watchers, self.complete_watchers):
                for key, watchers in list(registry.items()):
                    if rt in watchers:
                        watchers.remove(rt)
                        if not watchers:
                            del registry[key]

    async def stop(self) -> None:
        await self.stop_nodes(list(self.nodes.values()))
        self.nodes = {}
        await self.context.close()

    def node(self, node_id: str) -> Node | None:
        rt = self.nodes.get(node_id)
        return rt.node if rt else None


def config_of(node: Node) -> NodeConfig:
    return node.config
