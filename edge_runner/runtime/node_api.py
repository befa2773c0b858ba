"""What the engine gives one node instance: ``NodeRuntime``, the engine's implementation of
the contract's ``NodeApi`` (sending, status, logging, context, env, per-engine services).

The engine is held privately: nodes are typed against ``NodeApi`` and never reach it."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_runner.contract import Msg, Node, NodeApi, NodeStatus, clone_msg, new_msgid
from edge_runner.runtime.containment import describe_failure, is_node_failure
from edge_runner.runtime.context import Context
from edge_runner.runtime.typed import evaluate

if TYPE_CHECKING:
    from edge_runner.contract import NodeConfig
    from edge_runner.runtime.engine import Engine
    from edge_runner.runtime.flows import NodeDef
    from edge_runner.runtime.paths import RunnerPaths
    from edge_runner.runtime.services import EngineServices

log = logging.getLogger("edge_runner.node")


class NodeRuntime:
    """One deployed node: its wiring, its queue (for async nodes), and the API nodes call.

    Built by the engine; nodes reach it as ``self.rt``.
    """

    def __init__(
        self,
        engine: Engine,
        raw: dict[str, Any],
        config: NodeConfig,
        node_cls: type[Node],
        env: dict[str, Any] | None = None,
        defn: NodeDef | None = None,
    ) -> None:
        self._engine = engine
        self.raw = raw
        self.defn = defn
        self.id: str = raw["id"]
        self.type: str = raw["type"]
        self.z: str = raw.get("z") or ""
        self.g: str = raw.get("g") or ""
        self.name: str = str(raw.get("name") or "")
        self.config = config
        self.node_cls = node_cls
        self.wires: list[list[NodeRuntime]] = []
        self.env_vars: dict[str, Any] = {
            "NR_NODE_ID": self.id,
            "NR_NODE_NAME": self.name,
            "NR_NODE_PATH": f"{defn.path}/{self.id}" if defn and defn.path else self.id,
            **(env or {}),
        }
        self.path: str = defn.path if defn is not None else self.z
        self.defn_instance: str = defn.instance if defn is not None else ""
        # credentials of this node (SPEC.credentials names); never logged or sent anywhere
        self.credentials: dict[str, Any] = {}
        self.watched = False  # a complete node watches this node
        self.manual_done = False  # completion is signalled by done(), not by returning
        self.node: Node = node_cls(self, config)
        self.is_async = _is_async(type(self.node))
        self.queue: deque[Msg] = deque()
        self.queue_limit = node_cls.QUEUE_LIMIT
        self.dropped = 0
        self.worker: asyncio.Task[None] | None = None
        self.last_status: NodeStatus | None = None
        self.started = False
        self._context: Context | None = None

    # ---------------------------------------------------------------- context / env
    @property
    def context(self) -> Context:
        if self._context is None:
            self._context = Context(
                self._engine.context, f"node:{self.id}", self._engine.context_stores
            )
        return self._context

    @property
    def flow(self) -> Context:
        return self._engine.flow_context(self.z)

    @property
    def global_(self) -> Context:
        return self._engine.global_context

    def env(self, name: str) -> Any:
        """Node built-ins, then group chain / subflow instance / tab, then the engine's env,
        then the process env."""
        if name in self.env_vars:
            return self.env_vars[name]
        if self.defn is not None:
            return self.defn.env.get(name)
        return self._engine.env(self.z, name)

    def config_node(self, node_id: Any) -> Node | None:
        """The running config node (or any node) with this id, e.g. a broker or endpoint."""
        rt = self._engine.nodes.get(node_id) if isinstance(node_id, str) else None
        return rt.node if rt is not None else None

    def peer(self, node_id: str) -> NodeRuntime | None:
        return self._engine.nodes.get(node_id)

    def link_ins_named(self, name: str) -> list[NodeApi]:
        return list(self._engine.link_ins_by_name.get(name, ()))

    def evaluate(self, value: Any, vtype: str | None, msg: Msg | None = None) -> Any:
        return evaluate(self, value, vtype, msg)

    # ---------------------------------------------------------------- services / paths
    @property
    def services(self) -> EngineServices:
        return self._engine.services

    @property
    def data_dir(self) -> Path:
        return self._engine.data_dir

    @property
    def paths(self) -> RunnerPaths:
        return self._engine.paths

    # ---------------------------------------------------------------- messaging
    def send(self, msg: Msg | list[Any] | None, clone: bool = False) -> None:
        """Send like Node-RED's ``node.send``: a dict goes to port 0, a list has one entry per
        port (a dict, a list of dicts, or None).

        The first message delivered by the whole call is the object given (unless ``clone``);
        every later delivery, on any port or wire, gets its own deep copy. All copies are made
        before the first target runs: targets run synchronously here, and one that changes its
        message in place must not change what the others receive. Messages without ``_msgid``
        get the first message's id (or one new id), as in Node-RED."""
        if msg is None:
            return
        all_wires = self.wires
        if not all_wires:
            return
        if type(msg) is dict:
            wires = all_wires[0]
            if not wires:
                return
            if "_msgid" not in msg:
                msg["_msgid"] = new_msgid()
            if len(wires) == 1:  # the common case: one wire, no copy
                self._engine.deliver(wires[0], clone_msg(msg) if clone else msg)
                return
            events = [(target, msg) for target in wires]
        else:
            if isinstance(msg, dict):  # a dict subclass: one message on port 0
                msg = [msg]
            events = []
            ports = len(all_wires)
            for port, item in enumerate(msg):
                if item is None:
                    continue
                if port >= ports:
                    break
                if type(item) is dict:  # the common case (switch, multi-output functions)
                    for target in all_wires[port]:
                        events.append((target, item))
                    continue
                items = item if isinstance(item, list) else (item,)
                for target in all_wires[port]:  # Node-RED's order: each wire, then each message
                    for one in items:
                        if isinstance(one, dict):
                            events.append((target, one))
            if len(events) == 1:  # one message to one wire: no copy, no id sharing
                target, one = events[0]
                if not one.get("_msgid"):
                    one["_msgid"] = new_msgid()
                self._engine.deliver(target, clone_msg(one) if clone else one)
                return
            if not events:
                return
            msgid = next((m["_msgid"] for _, m in events if m.get("_msgid")), None)
            msgid = msgid or new_msgid()
            for _, one in events:
                if not one.get("_msgid"):
                    one["_msgid"] = msgid
        deliver = self._engine.deliver
        if len(events) == 1:
            target, one = events[0]
            deliver(target, clone_msg(one) if clone else one)
            return
        keep = 0 if clone else 1
        ready = events[:keep] + [(target, clone_msg(one)) for target, one in events[keep:]]
        for target, one in ready:
            deliver(target, one)

    def receive(self, msg: Msg) -> None:
        """Deliver a message into this node as if a wire brought it."""
        if "_msgid" not in msg:
            msg["_msgid"] = new_msgid()
        self._engine.deliver(self, msg)

    def enqueue(self, msg: Msg) -> None:
        if len(self.queue) >= self.queue_limit:
            self.queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                self.warn(f"input queue full ({self.queue_limit}); dropped {self.dropped} oldest")
        self.queue.append(msg)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self.queue and self.started:
            msg = self.queue.popleft()
            try:
                result = self.node.on_message(msg)
                if result is not None:
                    await result
            except Exception as exc:  # a node that raises never stops the engine
                self.error(exc, msg)
            except BaseException as exc:  # sys.exit() in node code neither
                if not is_node_failure(exc):
                    raise
                self.error(describe_failure(exc), msg)
            else:
                if self.watched and not self.manual_done:
                    self._engine.completed(self, msg)

    def done(self, msg: Msg) -> None:
        """The node finished ``msg`` (for nodes with ``manual_done``): feeds complete nodes."""
        if self.watched:
            self._engine.completed(self, msg)

    # ---------------------------------------------------------------- reporting
    def status(self, status: NodeStatus) -> None:
        if status == self.last_status:
            return
        self.last_status = status
        self._engine.node_status(self, status)

    def warn(self, text: Any) -> None:
        self._engine.node_log(self, 30, text, None)

    def error(self, err: Any, msg: Msg | None = None) -> None:
        self._engine.node_error(self, err, msg)

    def emit_debug(self, item: dict[str, Any]) -> None:
        self._engine.emit("debug", item)

    def log(self, text: Any) -> None:
        log.info("[%s:%s] %s", self.type, self.name or self.id, text)

    def __repr__(self) -> str:
        return f"<NodeRuntime {self.type} {self.id}>"


_ASYNC_CLASSES: dict[type[Node], bool] = {}


def _is_async(cls: type[Node]) -> bool:
    """Whether ``cls.on_message`` is a coroutine function (asked once per class)."""
    found = _ASYNC_CLASSES.get(cls)
    if found is None:
        found = _ASYNC_CLASSES[cls] = asyncio.iscoroutinefunction(cls.on_message)
    return found


def process_env(name: str) -> str | None:
    return os.environ.get(name)
