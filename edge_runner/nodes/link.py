"""``link in``, ``link out`` and ``link call``: virtual wires, within and across flows.

* ``link out`` (mode ``link``) sends to the ``link in`` nodes listed in ``links`` (any flow);
  mode ``return`` sends the message back to the ``link call`` that started the call.
* ``link call`` sends to one ``link in`` (``links[0]``, or, with ``linkType: "dynamic"``, the
  id or name in ``msg.target``) and waits for a ``link out`` in return mode; the reply leaves
  on its output. No reply within ``timeout`` seconds raises "timeout" with the message.
  Pending calls are bounded (``MAX_PENDING``); beyond it a call fails at once.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeApi,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    clone_msg,
    register,
)
from edge_runner.runtime.typed import to_number

MAX_PENDING = 10_000
_event_ids = itertools.count(1)


class LinkInConfig(NodeConfig):
    links: list[str] = []


class LinkOutConfig(NodeConfig):
    mode: Literal["link", "return"] = "link"
    links: list[str] = []


class LinkCallConfig(NodeConfig):
    links: list[str] = []
    linkType: Literal["static", "dynamic"] = "static"  # noqa: N815  # Node-RED's field name
    timeout: str = "30"

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout_text(cls, value: Any) -> str:
        return "" if value is None else str(value)


LINK_IN_SPEC = NodeSpec(
    type="link in",
    version=1,
    category=Category.COMMON,
    inputs=0,
    outputs=1,
    label="link in",
    color="#dddddd",
    icon="link-out.svg",
    help="""Create virtual wires between flows.

### Outputs
Every message a connected `link out` (or a `link call`) sends here.

### Details
A `link in` can be connected to `link out` nodes on any flow. Its name is how a dynamic
`link call` finds it (`msg.target`); names should be unique among link in nodes.
""",
)

LINK_OUT_SPEC = NodeSpec(
    type="link out",
    version=1,
    category=Category.COMMON,
    inputs=1,
    outputs=0,
    label="link out",
    color="#dddddd",
    icon="link-out.svg",
    help="""Create virtual wires between flows.

### Inputs
Any message.

### Details
**mode** `link`: the message goes to every `link in` listed in `links` (a copy for each after
the first). **mode** `return`: the message goes back to the `link call` node that called the
flow this node ends.
""",
)

LINK_CALL_SPEC = NodeSpec(
    type="link call",
    version=1,
    category=Category.COMMON,
    inputs=1,
    outputs=1,
    label="link call",
    color="#dddddd",
    icon="link-call.svg",
    help="""Call a flow that starts with a `link in` node and pass on the response.

### Inputs
- `target` *string*: with `linkType` `dynamic`, the id or name of the `link in` to call.

### Outputs
The message the called flow returned through a `link out` in `return` mode.

### Details
**timeout** (seconds, default 30; 0 = none): without a response in time the node raises
`timeout` with the message (catchable).
""",
)


@register
class LinkInNode(Node):
    """Entry point of a virtual wire."""

    SPEC: ClassVar[NodeSpec] = LINK_IN_SPEC
    Config: ClassVar[type[NodeConfig]] = LinkInConfig

    def on_message(self, msg: Msg) -> None:
        self.rt.send(msg)


@register
class LinkOutNode(Node):
    """Exit point of a virtual wire (or the return of a link call)."""

    SPEC: ClassVar[NodeSpec] = LINK_OUT_SPEC
    Config: ClassVar[type[NodeConfig]] = LinkOutConfig
    config: LinkOutConfig

    def on_message(self, msg: Msg) -> None:
        if self.config.mode == "return":
            stack = msg.get("_linkSource")
            if not isinstance(stack, list) or not stack:
                raise NodeFailed("no link call to return to (msg._linkSource is missing)")
            entry = stack.pop()
            if len(stack) == 0:
                del msg["_linkSource"]
            caller = self.rt.peer(str(entry.get("node"))) if isinstance(entry, dict) else None
            # a link call node, or a function node awaiting node.linkcall()
            returned = getattr(caller.node, "returned", None) if caller is not None else None
            if not callable(returned):
                raise NodeFailed("the link call node to return to no longer exists")
            returned(entry.get("id"), msg)
            return
        first = True
        for target_id in self.config.links:
            target = self.rt.peer(target_id)
            if target is None or target.type != "link in":
                continue
            target.receive(msg if first else clone_msg(msg))
            first = False


def find_link_in(rt: NodeApi, wanted: str) -> NodeApi:
    """The ``link in`` node a dynamic call names: by id, else by its (unique) name."""
    found = rt.peer(wanted)
    if found is not None and found.type == "link in" and not found.defn_instance:
        return found
    named = rt.link_ins_named(wanted)
    if len(named) > 1:
        raise NodeFailed(f"multiple link in nodes named {wanted!r}")
    if not named:
        raise NodeFailed(f"target link in node {wanted!r} not found")
    return named[0]


@register
class LinkCallNode(Node):
    """Calls a link-in flow and waits for its return."""

    SPEC: ClassVar[NodeSpec] = LINK_CALL_SPEC
    Config: ClassVar[type[NodeConfig]] = LinkCallConfig
    config: LinkCallConfig

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        seconds = to_number(self.config.timeout) if self.config.timeout.strip() else 30
        if seconds != seconds or seconds < 0:  # NaN or negative
            raise ValueError(f"timeout must be a number of seconds, got {self.config.timeout!r}")
        self.timeout = float(seconds)
        self.pending: dict[int, tuple[Msg, asyncio.TimerHandle | None]] = {}

    def _target(self, msg: Msg) -> NodeApi:
        if self.config.linkType == "dynamic":
            wanted = msg.get("target")
            if not isinstance(wanted, str) or not wanted:
                raise NodeFailed("msg.target must name the link in node to call")
            return find_link_in(self.rt, wanted)
        if not self.config.links:
            raise NodeFailed("no link in node selected")
        found = self.rt.peer(self.config.links[0])
        if found is None or found.type != "link in":
            raise NodeFailed(f"target link in node {self.config.links[0]!r} not found")
        return found

    def on_message(self, msg: Msg) -> None:
        target = self._target(msg)
        if len(self.pending) >= MAX_PENDING:
            raise NodeFailed(f"too many pending link calls ({MAX_PENDING})")
        event_id = next(_event_ids)
        handle = None
        if self.timeout > 0:
            handle = asyncio.get_running_loop().call_later(self.timeout, self._expired, event_id)
        self.pending[event_id] = (msg, handle)
        stack = msg.get("_linkSource")
        msg["_linkSource"] = [
            *(stack if isinstance(stack, list) else []),
            {"id": event_id, "node": self.id},
        ]
        target.receive(msg)

    def returned(self, event_id: Any, msg: Msg) -> None:
        entry = self.pending.pop(event_id, None) if isinstance(event_id, int) else None
        if entry is None:
            return  # timed out already, or restarted since
        if entry[1] is not None:
            entry[1].cancel()
        self.rt.send(msg)

    def _expired(self, event_id: int) -> None:
        entry = self.pending.pop(event_id, None)
        if entry is not None:
            self.rt.error(NodeFailed("timeout"), entry[0])

    async def stop(self) -> None:
        for _msg, handle in self.pending.values():
            if handle is not None:
                handle.cancel()
        self.pending.clear()
