"""The node contract: what every node type provides and what the engine gives each node.

A node type is one module under ``edge_runner.nodes`` that defines

* ``Config``: a frozen pydantic model (``NodeConfig`` subclass) holding the node's own fields
  exactly as Node-RED's flows.json spells them. It is the single schema: the editor renders it
  (via ``catalog.json``), the platform validates flows against it and the runtime parses it.
  Fields it does not declare (written by a newer or older Node-RED) are ignored, never refused:
  they stay in the stored flows, the runtime logs them once, the validator warns.
* ``SPEC``: a ``NodeSpec`` (type key, version, category, ports, help text).
* the node class (``Node`` subclass) named in ``SPEC.node_class`` -- by convention the module's
  only ``Node`` subclass -- registered with ``@register``.

Messages are plain ``dict``s (``Msg``) holding JSON-safe values plus ``bytes``; ``_msgid`` is set
by the engine. Everything below is the runner's public contract and must stay stable.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, cast

if TYPE_CHECKING:
    from pydantic import BaseModel

Msg = dict[str, Any]

# Keys every flows.json node object may carry that belong to the editor/engine, not to the
# node type's own Config.
COMMON_KEYS = frozenset(
    {
        "id",
        "type",
        "z",
        "g",
        "x",
        "y",
        "w",
        "h",
        "wires",
        "d",
        "info",
        "l",
        "icon",
        "inputLabels",
        "outputLabels",
        "_users",
        "env",
        "color",
        "credentials",
        "_alias",
    }
)


# --------------------------------------------------------------------------------- schema


if TYPE_CHECKING:

    class NodeConfig(BaseModel):
        """Base of every node type's ``Config``. Unknown fields are ignored, values are
        frozen."""

        name: str = ""

else:

    def __getattr__(attribute: str) -> Any:
        # ``NodeConfig`` is built on first use: pydantic costs ~70 ms of import time, and a
        # runner with no flows (or the platform reading these helpers) never needs it.
        if attribute == "NodeConfig":
            return _node_config()
        raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def _node_config() -> type[NodeConfig]:
    found = globals().get("NodeConfig")
    if found is not None:
        return found  # type: ignore[no-any-return]  # set below on the first call
    from pydantic import BaseModel, ConfigDict

    class _NodeConfig(BaseModel):
        """Base of every node type's ``Config``. Unknown fields are ignored, values are
        frozen."""

        # Node-RED ignores the fields it does not know; flows from any of its versions load.
        model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

        name: str = ""

    _NodeConfig.__name__ = _NodeConfig.__qualname__ = "NodeConfig"
    _NodeConfig.__module__ = __name__
    globals()["NodeConfig"] = _NodeConfig
    return cast("type[NodeConfig]", _NodeConfig)


def unknown_fields(config_cls: type[BaseModel], fields: dict[str, Any]) -> list[str]:
    """The keys of ``fields`` that ``config_cls`` neither declares nor aliases (ignored)."""
    known = _declared_names(config_cls)
    return [key for key in fields if key not in known]


@lru_cache(maxsize=512)
def _declared_names(config_cls: type[BaseModel]) -> frozenset[str]:
    names = set(config_cls.model_fields)
    names.update(f.alias for f in config_cls.model_fields.values() if f.alias)
    return frozenset(names)


class Category(StrEnum):
    COMMON = "common"
    FUNCTION = "function"
    SEQUENCE = "sequence"
    PARSER = "parser"
    NETWORK = "network"
    STORAGE = "storage"
    INDUSTRIAL = "industrial"
    AI = "ai"
    CONFIG = "config"


@dataclass(frozen=True)
class NodeSpec:
    """Static description of a node type, exported to catalog.json."""

    type: str  # kebab-case or the Node-RED core name ("http in", "link out")
    version: int
    category: Category
    inputs: int  # 0 or 1
    outputs: int  # default number of output ports; ``dynamic_outputs`` reads it from config
    help: str  # markdown shown in the editor's help panel
    label: str = ""
    color: str = "#dddddd"
    icon: str = ""
    dynamic_outputs: str | None = None  # config field holding the port count ("outputs")
    is_config: bool = False  # a config node (no wires, shared by other nodes)
    credentials: tuple[str, ...] = ()  # credential field names, stored apart and encrypted
    output_labels: tuple[str, ...] = ()
    internal: bool = False  # created by the engine itself, never in flows.json nor the catalog

    def output_count(self, config: NodeConfig) -> int:
        if self.dynamic_outputs:
            value = getattr(config, self.dynamic_outputs, self.outputs)
            try:
                return max(0, int(value))
            except (TypeError, ValueError):
                return self.outputs
        return self.outputs


# --------------------------------------------------------------------------------- status


Fill = Literal["red", "green", "yellow", "blue", "grey"]
Shape = Literal["ring", "dot"]


@dataclass(frozen=True)
class NodeStatus:
    """Node-RED's status badge. ``NodeStatus()`` clears it."""

    fill: Fill | None = None
    shape: Shape | None = None
    text: str = ""

    def as_dict(self) -> dict[str, str]:
        data: dict[str, str] = {}
        if self.fill:
            data["fill"] = self.fill
        if self.shape:
            data["shape"] = self.shape
        if self.text:
            data["text"] = self.text
        return data


CLEAR_STATUS = NodeStatus()


# ------------------------------------------------------------------------------- failures


class NodeError(Exception):
    """Base of the three failure classes every boundary maps vendor exceptions to."""


class RetryLater(NodeError):  # noqa: N818  # public contract names, used by every node
    """Transient: peer unreachable, timeout, busy. Retried with backoff; status goes red once."""


class NeedsUserFix(NodeError):  # noqa: N818  # public contract names
    """Configuration or permission problem the user must fix (bad address, auth failure)."""


class NodeFailed(NodeError):  # noqa: N818  # public contract names
    """This message failed (bad payload, decode error). Routed to catch nodes; the node keeps
    running."""


# ------------------------------------------------------------------------------ node API

T = TypeVar("T")


class ContextScope(Protocol):
    """Node, flow or global context as a node sees it (Node-RED's ``context.get/set/keys``)."""

    def get(self, key: str, default: Any = None, store: str | None = None) -> Any: ...

    def set(self, key: str, value: Any = None, store: str | None = None) -> None: ...

    def keys(self, store: str | None = None) -> list[str]: ...


class Services(Protocol):
    """The services of one engine, keyed like Home Assistant's ``hass.data``: connection pools,
    the ``http in`` route table, the watchdog. ``get`` returns the engine's instance of ``key``,
    made by ``factory`` on first use; the engine closes them (``close()``, awaited when it
    returns an awaitable) in reverse order of creation when it stops. Two engines in one process
    never share one."""

    def get(self, key: str, factory: Callable[[], T]) -> T: ...


class RunnerDirectories(Protocol):
    """The directories of the runner's data-directory layout a node may use
    (``edge_runner.runtime.paths.RunnerPaths``); ``ensure`` creates one (0700 below
    ``certificates`` and ``temp``)."""

    @property
    def node_data(self) -> Path: ...

    @property
    def models(self) -> Path: ...

    @property
    def certificates(self) -> Path: ...

    @property
    def opcua_pki(self) -> Path: ...

    @property
    def outbox(self) -> Path: ...

    @property
    def mqtt_queue(self) -> Path: ...

    @property
    def historian(self) -> Path: ...

    @property
    def temp(self) -> Path: ...

    def ensure(self, directory: Path) -> Path: ...


class NodeApi(Protocol):
    """What a node may use of the engine running it, reached as ``self.rt``.

    Deliberately narrow: a node never sees the engine object, so engine-wide state (the node
    table, connection pools, routes) stays per engine and behind this interface."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def z(self) -> str:
        """The tab or subflow instance the node runs in."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> str:
        """Node-RED's ``node._path``-like location (subflow instance chain) for debug output."""

    @property
    def defn_instance(self) -> str:
        """The subflow instance this node was copied for, or ``""``."""

    @property
    def node(self) -> Node:
        """The node instance itself (for peers found with ``peer``)."""

    credentials: dict[str, Any]
    manual_done: bool

    @property
    def watched(self) -> bool:
        """Whether a ``complete`` node watches this node."""

    # messaging ---------------------------------------------------------------------------
    def send(self, msg: Msg | list[Any] | None, clone: bool = False) -> None: ...

    def receive(self, msg: Msg) -> None:
        """Deliver ``msg`` into this node as if a wire brought it."""

    def done(self, msg: Msg) -> None: ...

    # reporting ---------------------------------------------------------------------------
    def status(self, status: NodeStatus) -> None: ...

    def log(self, text: Any) -> None: ...

    def warn(self, text: Any) -> None: ...

    def error(self, err: Any, msg: Msg | None = None) -> None: ...

    def emit_debug(self, item: dict[str, Any]) -> None:
        """Publish one item to the debug sidebar (/comms ``debug``)."""

    # context, env, typed values -----------------------------------------------------------
    @property
    def context(self) -> ContextScope: ...

    @property
    def flow(self) -> ContextScope: ...

    @property
    def global_(self) -> ContextScope: ...

    def env(self, name: str) -> Any: ...

    def evaluate(self, value: Any, vtype: str | None, msg: Msg | None = None) -> Any: ...

    # other nodes of the same engine -------------------------------------------------------
    def config_node(self, node_id: Any) -> Node | None:
        """The running config node (or any node) with this id, e.g. a broker or endpoint."""

    def peer(self, node_id: str) -> NodeApi | None:
        """Another running node of this engine (link targets, subflow instances)."""

    def link_ins_named(self, name: str) -> list[NodeApi]:
        """The ``link in`` nodes outside subflows called ``name`` (dynamic link calls)."""

    # per-engine services and directories ------------------------------------------------
    @property
    def services(self) -> Services: ...

    @property
    def data_dir(self) -> Path:
        """Where nodes keep files (``paths.node_data``, created on demand)."""

    @property
    def paths(self) -> RunnerDirectories:
        """The runner's data-directory layout; raises when the engine has none (tests get a
        temporary one from the harness)."""


# ------------------------------------------------------------------------------ node class


class Node:
    """Base class of every node type.

    The engine creates one instance per flow node with ``(runtime, config)``, awaits ``start()``
    before any message arrives, calls ``on_message(msg)`` per input message, and awaits
    ``stop()`` (idempotent) on redeploy or shutdown.

    ``on_message`` may be a plain method (the fast path: the engine calls it directly when a
    message is sent to it) or ``async`` (messages then queue per node, bounded by
    ``QUEUE_LIMIT``; the oldest waiting message is dropped with a warning when it is full).
    Raise ``NodeFailed`` (or any exception) to report an error for that message: it is routed to
    ``catch`` nodes and the debug sidebar; the node keeps running.

    Completion (for ``complete`` nodes): a message is complete when ``on_message`` returns
    without raising. A node that finishes later (timers, callbacks) sets
    ``self.rt.manual_done = True`` in its constructor and calls ``self.done(msg)`` itself.
    Credentials (``SPEC.credentials`` names) are in ``self.rt.credentials``; config nodes are
    reached with ``self.rt.config_node(id)``.
    """

    SPEC: ClassVar[NodeSpec]
    Config: ClassVar[type[NodeConfig]]
    QUEUE_LIMIT: ClassVar[int] = 1000

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        self.rt = runtime
        self.config = config

    # lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Open resources. Raise ``NeedsUserFix`` to fail the node (red status, no messages)."""

    def on_message(self, msg: Msg) -> Awaitable[None] | None:
        """Handle one input message."""

    async def stop(self) -> None:
        """Release resources; called once per start, must tolerate a partial start."""

    # conveniences forwarding to the runtime ---------------------------------------------
    @property
    def id(self) -> str:
        return self.rt.id

    def send(self, msg: Msg | list[Any] | None, clone: bool = False) -> None:
        self.rt.send(msg, clone=clone)

    def status(self, fill: Fill | None = None, shape: Shape | None = None, text: str = "") -> None:
        self.rt.status(NodeStatus(fill, shape, text))

    def warn(self, text: Any) -> None:
        self.rt.warn(text)

    def error(self, err: Any, msg: Msg | None = None) -> None:
        self.rt.error(err, msg)

    def log(self, text: Any) -> None:
        self.rt.log(text)

    def done(self, msg: Msg) -> None:
        """This node finished ``msg`` (only for nodes with ``rt.manual_done``)."""
        self.rt.done(msg)


NodeFactory = Callable[["NodeApi", "NodeConfig"], Node]


# ------------------------------------------------------------------------------ registry


@dataclass
class Registry:
    types: dict[str, type[Node]] = field(default_factory=dict)

    def add(self, cls: type[Node]) -> type[Node]:
        key = cls.SPEC.type
        if key in self.types and self.types[key] is not cls:
            raise ValueError(f"node type {key!r} registered twice")
        self.types[key] = cls
        return cls

    def get(self, type_key: str) -> type[Node] | None:
        return self.types.get(type_key)

    def __iter__(self) -> Iterator[type[Node]]:
        return iter(sorted(self.types.values(), key=lambda c: c.SPEC.type))


REGISTRY = Registry()


def register(cls: type[Node]) -> type[Node]:
    """Class decorator: add a node type to the global registry."""
    return REGISTRY.add(cls)


# -------------------------------------------------------------------------- message helpers


def new_msgid() -> str:
    return uuid.uuid4().hex[:16]


def clone_msg(msg: Msg) -> Msg:
    """Deep copy like Node-RED's RED.util.cloneMessage (``req``/``res`` are shared, not copied)."""
    shared: dict[str, Any] = {k: msg[k] for k in ("req", "res") if k in msg}
    if shared:
        rest = {k: v for k, v in msg.items() if k not in shared}
        out = copy.deepcopy(rest)
        out.update(shared)
        return out
    return copy.deepcopy(msg)


class PropertyRef(str):
    """A nested ``msg.`` reference inside brackets (``a[msg.key]``): its text is the inner
    expression, ``parts`` its parsed form. Resolved against the message on each access."""

    parts: list[str | int]  # inside the message: ``msg.a.b`` -> ["a", "b"]
    position: int  # where the inner expression starts, for Node-RED's error text

    def __new__(cls, text: str, parts: list[str | int], position: int) -> PropertyRef:
        ref = super().__new__(cls, text)
        ref.parts = parts
        ref.position = position
        return ref


class NestedPath(list[str | int]):
    """A parsed path holding ``PropertyRef`` parts (resolved per message)."""


def parse_path(path: str) -> list[str | int]:
    """Split a Node-RED property expression (``a.b[0]["c d"]``, ``headers.content-type``,
    ``a[msg.topic]``) into keys and indexes with ``RED.util.normalisePropertyExpression``'s
    grammar and error texts (``ValueError``). Nested ``msg.`` references become
    ``PropertyRef`` parts of a ``NestedPath``."""
    if not isinstance(path, str):
        raise ValueError("Invalid property expression: zero-length")
    parts = _parse_path(path)
    if any(isinstance(part, PropertyRef) for part in parts):
        return NestedPath(parts)
    return list(parts)


def _index_or_key(text: str) -> str | int:
    return int(text) if text.isascii() and text.isdigit() else text


def _invalid(text: str) -> ValueError:
    return ValueError(f"Invalid property expression: {text}")


@lru_cache(maxsize=4096)
def _parse_path(path: str) -> tuple[str | int, ...]:
    # Nodes parse their property paths once per instance; a 1000-node deploy repeats the same
    # few paths ("payload", "topic") over and over, so the parsed form is cached.
    length = len(path)
    if length == 0:
        raise _invalid("zero-length")
    if path.isidentifier():
        return (path,)
    parts: list[str | int] = []
    start, i = 0, 0
    in_string = in_box = False
    quote = ""
    while i < length:
        c = path[i]
        if in_string:
            if c == quote:
                if i == start:
                    raise _invalid(f"zero-length string at position {start}")
                parts.append(path[start:i])
                after = path[i + 1] if i + 1 < length else ""
                if in_box and after != "]":
                    raise _invalid(f"unexpected array expression at position {start}")
                if not in_box and after not in ("", "[", "."):
                    raise _invalid(f"unexpected {after} expression at position {i + 1}")
                start = i + 1
                in_string = False
        elif c in "'\"":
            if i != start:
                raise _invalid(f"unexpected {c} at position {i}")
            in_string, quote, start = True, c, i + 1
        elif c == ".":
            if i == 0:
                raise _invalid("unexpected . at position 0")
            if start != i:
                parts.append(_index_or_key(path[start:i]))
            if i == length - 1:
                raise _invalid("unterminated expression")
            following = path[i + 1]
            if not (following.isascii() and (following.isalnum() or following in "$_")):
                raise _invalid(f"unexpected {following} at position {i + 1}")
            start = i + 1
        elif c == "[":
            if i == 0:
                raise _invalid(f"unexpected {c} at position {i}")
            if start != i:
                parts.append(path[start:i])
            if i == length - 1:
                raise _invalid("unterminated expression")
            if path.startswith(("msg.", "msg["), i + 1):
                end = _closing_bracket(path, i)
                inner = path[i + 1 : end]
                try:
                    whole = parse_path(inner)
                    inner_parts = type(whole)(whole[1:])  # without its leading "msg"
                except ValueError:
                    raise ValueError(f"Invalid expression started at position {i + 1}") from None
                if not inner_parts:
                    raise ValueError(f"Invalid expression started at position {i + 1}")
                parts.append(PropertyRef(inner, inner_parts, i + 1))
                i = start = end + 1
                in_box = False
                continue
            following = path[i + 1]
            if following not in "'\"" and not (following.isascii() and following.isdigit()):
                raise _invalid(f"unexpected {following} at position {i + 1}")
            start = i + 1
            in_box = True
        elif c == "]":
            if not in_box:
                raise _invalid(f"unexpected {c} at position {i}")
            if start != i:
                text = path[start:i]
                if not (text.isascii() and text.isdigit()):
                    raise _invalid(f"unexpected array expression at position {start}")
                parts.append(int(text))
            start = i + 1
            in_box = False
        elif c == " ":
            raise _invalid(f"unexpected ' ' at position {i}")
        i += 1
    if in_box or in_string:
        raise _invalid("unterminated expression")
    if start < length:
        parts.append(_index_or_key(path[start:]))
    return tuple(parts)


def _closing_bracket(path: str, opening: int) -> int:
    """The ``]`` closing the nested expression opened at ``opening``. Like Node-RED's scan,
    brackets count inside quotes too (``a[msg['b][']]`` balances)."""
    depth = 1
    for j in range(opening + 1, len(path)):
        c = path[j]
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        if depth == 0:
            return j
    raise _invalid(f"unmatched '[' at position {opening}")


def resolve_path(parts: list[str | int], root: Any) -> list[str | int]:
    """``parts`` with each nested ``msg.`` reference replaced by its value in ``root`` (the
    message); an undefined reference fails like Node-RED's (``NodeFailed``)."""
    if type(parts) is not NestedPath:
        return parts
    out: list[str | int] = []
    for part in parts:
        if isinstance(part, PropertyRef):
            value = get_property(root, part.parts, _MISSING)
            if value is _MISSING or value is None or isinstance(value, bool):
                raise NodeFailed(f"Invalid expression started at position {part.position}")
            out.append(value if isinstance(value, int) else str(value))
        else:
            out.append(part)
    return out


def path_text(parts: list[str | int]) -> str:
    """Resolved parts as one expression (``a["b"][0]``): Node-RED's
    ``normalisePropertyExpression(path, msg, true)``, used for context keys."""
    text = str(parts[0])
    for part in parts[1:]:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f"['{part}']" if '"' in part else f'["{part}"]'
    return text


_MISSING = object()


def get_property(obj: Any, path: str | list[str | int], default: Any = None) -> Any:
    """Read ``path`` from ``obj``; ``default`` when any step is missing."""
    parts = resolve_path(parse_path(path) if isinstance(path, str) else path, obj)
    cur = obj
    for part in parts:
        if isinstance(part, int) and isinstance(cur, list):
            if -len(cur) <= part < len(cur):
                cur = cur[part]
                continue
            return default
        if isinstance(cur, dict):
            key = part if isinstance(part, str) else str(part)
            value = cur.get(key, _MISSING)
            if value is _MISSING:
                return default
            cur = value
            continue
        return default
    return cur


def has_property(obj: Any, path: str | list[str | int]) -> bool:
    return get_property(obj, path, _MISSING) is not _MISSING


def set_property(obj: Any, path: str | list[str | int], value: Any, create: bool = True) -> bool:
    """Set ``path`` in ``obj``, creating missing objects (or lists before an index) when
    ``create``. Returns False when the path cannot be set."""
    parts = resolve_path(parse_path(path) if isinstance(path, str) else path, obj)
    cur = obj
    for i, part in enumerate(parts[:-1]):
        nxt_is_index = isinstance(parts[i + 1], int)
        if isinstance(cur, list) and isinstance(part, int):
            if not -len(cur) <= part < len(cur):
                if not create or part < 0:
                    return False
                cur.extend([None] * (part + 1 - len(cur)))
            if not isinstance(cur[part], (dict, list)):
                if not create:
                    return False
                cur[part] = [] if nxt_is_index else {}
            cur = cur[part]
        elif isinstance(cur, dict):
            key = part if isinstance(part, str) else str(part)
            if not isinstance(cur.get(key), (dict, list)):
                if not create:
                    return False
                cur[key] = [] if nxt_is_index else {}
            cur = cur[key]
        else:
            return False
    last = parts[-1]
    if isinstance(cur, list) and isinstance(last, int):
        if last >= len(cur):
            cur.extend([None] * (last + 1 - len(cur)))
        cur[last] = value
        return True
    if isinstance(cur, dict):
        cur[last if isinstance(last, str) else str(last)] = value
        return True
    return False


def delete_property(obj: Any, path: str | list[str | int]) -> bool:
    parts = resolve_path(parse_path(path) if isinstance(path, str) else path, obj)
    parent = get_property(obj, parts[:-1], _MISSING) if len(parts) > 1 else obj
    last = parts[-1]
    if isinstance(parent, dict):
        key = last if isinstance(last, str) else str(last)
        if key in parent:
            del parent[key]
            return True
    elif isinstance(parent, list) and isinstance(last, int) and -len(parent) <= last < len(parent):
        del parent[last]
        return True
    return False
