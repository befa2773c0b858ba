"""Where errors, statuses and completions go: catch, status and complete nodes; logs.

Restates Node-RED's ``Flow.handleError`` / ``handleStatus`` / ``handleComplete``:

* An error with a message goes to the ``catch`` nodes of the node's flow (tab, or subflow
  instance) whose scope includes it: scoped catch nodes first, then catch-all ones, then
  ``uncaught`` ones only if nobody handled it. Inside a subflow, an error no catch node handled
  is re-raised by the subflow instance node in its parent flow. ``msg.error`` is
  ``{"message", "source": {"id", "type", "name", "count"}}`` (plus ``code`` and ``stack`` when
  the error has them); a message caught 10 times by the
  same source is dropped (loop guard).
* A status change goes out as ``status/<id>`` and to the ``status`` nodes in scope as
  ``{"status": {fill, shape, text, "source": {id, type, name}}}``, once the deploy's nodes
  have started (Node-RED's status nodes miss what nodes show while they are created).
* A node that finished a message (returned from ``on_message``, or called ``done()``) feeds the
  ``complete`` nodes watching it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from edge_runner.contract import Msg, NodeStatus, clone_msg, new_msgid

if TYPE_CHECKING:
    from edge_runner.runtime.flows import FlowModel
    from edge_runner.runtime.node_api import NodeRuntime

log = logging.getLogger("edge_runner.engine")
MAX_CATCH_LOOPS = 10
# Node-RED's Node keeps a non-empty name only; these core nodes copy the config's name in their
# constructor, so an empty one shows as ``"name": ""`` in a status or error source
NAME_KEPT_EMPTY = frozenset({"debug", "function", "template", "delay", "tcp out"})


def _scope_rank(rt: NodeRuntime) -> int:
    scope = getattr(rt.config, "scope", None)
    if scope:  # a list of ids or "group"
        return 0
    return 2 if getattr(rt.config, "uncaught", False) else 1


class Router:
    """Mixed into the engine: owns the catch/status/complete indexes."""

    nodes: dict[str, NodeRuntime]
    model: FlowModel

    def __init__(self) -> None:
        self.catchers: dict[str, list[NodeRuntime]] = {}
        self.status_watchers: dict[str, list[NodeRuntime]] = {}
        self.complete_watchers: dict[str, list[NodeRuntime]] = {}
        self.link_ins_by_name: dict[str, list[NodeRuntime]] = {}
        # Node-RED indexes its status nodes once every node of a deploy was created: a status
        # set while nodes start (the debug node's grey ring) reaches no status node
        self.nodes_starting = False

    # the engine provides these
    def emit(self, topic: str, data: Any) -> None:
        raise NotImplementedError

    def deliver(self, target: NodeRuntime, msg: Msg) -> None:
        raise NotImplementedError

    def redact(self, text: str) -> str:
        raise NotImplementedError

    def reindex(self) -> None:
        """Rebuild the watcher indexes from the running nodes (after every deploy)."""
        catchers: dict[str, list[NodeRuntime]] = {}
        statuses: dict[str, list[NodeRuntime]] = {}
        completes: dict[str, list[NodeRuntime]] = {}
        links: dict[str, list[NodeRuntime]] = {}
        for rt in self.nodes.values():
            kind = rt.type
            if kind == "catch":
                catchers.setdefault(rt.z, []).append(rt)
            elif kind == "status":
                statuses.setdefault(rt.z, []).append(rt)
            elif kind == "complete":
                for target in getattr(rt.config, "scope", None) or []:
                    completes.setdefault(str(target), []).append(rt)
            elif kind == "link in" and rt.name and not rt.defn_instance:
                links.setdefault(rt.name, []).append(rt)
        for group in catchers.values():
            group.sort(key=_scope_rank)
        self.catchers, self.status_watchers = catchers, statuses
        self.complete_watchers, self.link_ins_by_name = completes, links
        for rt in self.nodes.values():
            rt.watched = rt.id in completes

    def _in_scope(self, watcher: NodeRuntime, rt: NodeRuntime) -> bool:
        scope = getattr(watcher.config, "scope", None)
        if not scope:
            return True
        if scope == "group":
            return bool(watcher.g) and watcher.g in self._group_chain(rt.g)
        return isinstance(scope, (list, tuple)) and rt.id in scope

    def _group_chain(self, group_id: str) -> list[str]:
        chain: list[str] = []
        while group_id and group_id not in chain and len(chain) < 32:
            chain.append(group_id)
            group = self.model.groups.get(group_id) or {}
            group_id = str(group.get("g") or "")
        return chain

    @staticmethod
    def _source(rt: NodeRuntime) -> dict[str, Any]:
        source: dict[str, Any] = {"id": rt.id, "type": rt.type}
        if rt.name or (rt.type in NAME_KEPT_EMPTY and "name" in rt.raw):
            source["name"] = rt.name
        return source

    # ------------------------------------------------------------------ status
    def node_status(self, rt: NodeRuntime, status: NodeStatus) -> None:
        data = status.as_dict()
        if "text" in data:
            data["text"] = self.redact(data["text"])
        self.emit(f"status/{rt.id}", data)
        if self.nodes_starting:
            return
        for watcher in self.status_watchers.get(rt.z, ()):
            if watcher is rt or not self._in_scope(watcher, rt):
                continue
            self.deliver(
                watcher, {"_msgid": new_msgid(), "status": {**data, "source": self._source(rt)}}
            )

    # ------------------------------------------------------------------ logs and errors
    def node_log(self, rt: NodeRuntime, level: int, text: Any, msg: Msg | None) -> None:
        message = self.redact(text if isinstance(text, str) else repr(text))
        logger = log.warning if level == 30 else log.error
        logger("[%s:%s] %s", rt.type, rt.name or rt.id, message)
        item: dict[str, Any] = {
            "level": level,
            "id": rt.id,
            "type": rt.type,
            "msg": message,
            "z": rt.z,
            "path": rt.path,
            "timestamp": int(time.time() * 1000),
            "format": f"string[{len(message)}]",
        }
        if rt.name:
            item["name"] = rt.name
        if msg is not None and "_msgid" in msg:
            item["_msgid"] = msg["_msgid"]
        self.emit("debug", item)

    def node_error(self, rt: NodeRuntime, err: Any, msg: Msg | None) -> None:
        text = err if isinstance(err, str) else str(err)
        if isinstance(err, Exception) and not text:
            text = type(err).__name__
        text = self.redact(text)
        code = getattr(err, "code", None)
        stack = getattr(err, "stack", None)
        # As Node-RED: an error a catch node handled is not logged on top.
        if msg is None or not self.route_error(rt, rt, text, msg, code, stack):
            self.node_log(rt, 20, text, msg)

    def route_error(
        self,
        reporter: NodeRuntime,
        source: NodeRuntime,
        text: str,
        msg: Msg,
        code: Any = None,
        stack: Any = None,
    ) -> bool:
        """Deliver an error to the catch nodes of ``reporter``'s flow; True if handled."""
        count = 1
        previous = msg.get("error")
        if (
            isinstance(previous, dict)
            and isinstance(previous.get("source"), dict)
            and previous["source"].get("id") == source.id
        ):
            count = int(previous["source"].get("count") or 1) + 1
            if count >= MAX_CATCH_LOOPS:
                log.warning("[%s] message exceeded the maximum number of catches", source.id)
                return True
        handled = handled_by_uncaught = False
        for catcher in self.catchers.get(reporter.z, ()):
            if catcher is reporter or not self._in_scope(catcher, reporter):
                continue
            if getattr(catcher.config, "uncaught", False) and not handled_by_uncaught:
                if handled:
                    continue
                handled_by_uncaught = True
            out = clone_msg(msg)
            if "error" in out:  # Node-RED keeps the message's own error beside the new one
                out["_error"] = out["error"]
            out["error"] = {"message": text, "source": {**self._source(source), "count": count}}
            if isinstance(code, str | int) and not isinstance(code, bool):
                out["error"]["code"] = code
            if isinstance(stack, str) and stack:
                out["error"]["stack"] = self.redact(stack)
            self.deliver(catcher, out)
            handled = True
        if not handled:
            instance = self.nodes.get(reporter.z)
            if instance is not None and instance is not reporter:
                return self.route_error(instance, source, text, msg, code, stack)
        return handled

    # ------------------------------------------------------------------ completion
    def completed(self, source: NodeRuntime, msg: Msg) -> None:
        for watcher in self.complete_watchers.get(source.id, ()):
            self.deliver(watcher, clone_msg(msg))
