"""The ``join`` node: combine a sequence of messages into one (auto, manual or reduce)."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeFailed, NodeSpec, register
from edge_runner.nodes._sequence import (
    UNDEFINED,
    compile_path,
    get_path,
    js_number,
    js_string,
    require_parts,
    set_path,
    unescape,
)
from edge_runner.runtime.typed import compile_jsonata, evaluate_jsonata

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi

# Open groups are bounded; past this the oldest group is dropped with an error.
MAX_GROUPS = 1000
MAX_GROUP_MESSAGES = 100_000


class Config(NodeConfig):
    mode: Literal["auto", "custom", "reduce"] = "auto"
    build: Literal["string", "array", "object", "merged", "buffer"] = "array"
    property: str = "payload"
    propertyType: Literal["msg", "full"] = "msg"  # noqa: N815
    key: str = "topic"
    joiner: str = "\\n"
    joinerType: Literal["str", "bin"] = "str"  # noqa: N815
    useparts: bool = False
    accumulate: bool | str = False
    timeout: str | float = ""
    count: str | int = ""
    reduceRight: bool = False  # noqa: N815
    reduceExp: str = ""  # noqa: N815
    reduceInit: str = ""  # noqa: N815
    reduceInitType: str = ""  # noqa: N815
    reduceFixup: str = ""  # noqa: N815

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.propertyType == "msg":
            compile_path(self.property or "payload")
        for name in ("timeout", "count"):
            raw = getattr(self, name)
            if raw not in ("", None) and not js_number(raw) >= 0:
                raise ValueError(f"{name} must be a non-negative number, got {raw!r}")
        if self.joinerType == "bin":
            try:
                bytes(json.loads(self.joiner))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"binary joiner must be a JSON byte array: {exc}") from exc
        if self.mode == "reduce":
            if not self.reduceExp:
                raise ValueError("reduce mode needs a reduce expression (reduceExp)")
            for expression in (self.reduceExp, self.reduceFixup):
                if expression:
                    try:
                        compile_jsonata(expression)
                    except NodeFailed as exc:
                        raise ValueError(str(exc)) from exc
        return self


SPEC = NodeSpec(
    type="join",
    version=1,
    category=Category.SEQUENCE,
    inputs=1,
    outputs=1,
    label="join",
    color="#E2D96E",
    icon="join.svg",
    help="""Joins sequences of messages into a single message.

### Inputs
- **parts** *object*: the sequence information written by split (auto and reduce modes).
- **complete**: when present, the group collected so far is sent at once.
- **reset**: when present, the group collected so far is discarded.

### Outputs
One message holding the combined value; in auto mode its `msg.parts` is the one the split
node saved (or removed).

### Details
- **Automatic**: reverses a split: strings and buffers are joined with their separator,
  arrays rebuilt in `parts.index` order (out-of-order parts are fine), objects rebuilt by key.
- **Manual**: builds a string (joined by *joiner*), array, buffer, key/value object (key from
  `msg.topic` or *key*; *count* is then the number of distinct keys) or a merged object, from
  a property or the whole message; it is sent after *count* messages, after *timeout*
  seconds from the first message, or on `msg.complete`. *Accumulate* keeps building the
  object after each send.
- **Reduce**: evaluates a JSONata expression per message of a sequence with `$A` (the
  accumulated value, starting at *initial value*), `$I` (index) and `$N` (count), in index
  order (or reversed), then the optional *fixup* expression with `$A` and `$N`.

At most 1000 groups are kept open; past that the oldest is dropped with an error.
""",
)

JoinConfig = Config  # the node class's ``Config`` attribute shadows the name inside it


class _Group:
    __slots__ = ("count", "items", "keys", "msg", "parts", "timer")

    def __init__(self) -> None:
        self.items: dict[Any, Any] = {}
        self.keys: list[Any] = []
        self.count: int | None = None
        self.msg: Msg = {}
        self.parts: dict[str, Any] = {}
        self.timer: asyncio.TimerHandle | None = None


@register
class JoinNode(Node):
    """Join sequences (from split or any messages) into one message."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, JoinConfig):
            raise TypeError("join node needs its own Config")
        self.cfg = config
        self.path = compile_path(config.property or "payload")
        self.key_path = compile_path(config.key or "topic")
        self.count = int(js_number(config.count)) if config.count not in ("", None) else 0
        self.timeout = float(js_number(config.timeout)) if config.timeout not in ("", None) else 0
        self.joiner: str | bytes = (
            bytes(json.loads(config.joiner))
            if config.joinerType == "bin"
            else unescape(config.joiner)
        )
        self.accumulate = config.accumulate in (True, "true")
        self.groups: dict[Any, _Group] = {}

    async def stop(self) -> None:
        for group in self.groups.values():
            if group.timer is not None:
                group.timer.cancel()
        self.groups.clear()

    def on_message(self, msg: Msg) -> None:
        if self.cfg.mode == "custom":
            self._manual(msg)
            return
        parts = require_parts(msg)
        if "reset" in msg and parts is None:
            self._drop_all()
            return
        if parts is None:
            raise NodeFailed(
                f"Message missing msg.parts property - cannot join in '{self.cfg.mode}' mode"
            )
        group = self._group(parts["id"])
        group.msg = msg
        group.parts = parts
        if isinstance(parts.get("count"), int):
            group.count = parts["count"]
        key = parts.get("key") if parts.get("type") == "object" else parts["index"]
        whole = self.cfg.propertyType == "full" or self.cfg.mode == "reduce"
        value = msg if whole else get_path(msg, self._auto_path(parts))
        if key not in group.items:
            group.keys.append(key)
        group.items[key] = value
        if len(group.items) > MAX_GROUP_MESSAGES:
            self._discard(parts["id"])
            raise NodeFailed(f"too many parts in sequence {parts['id']!r}")
        if "complete" in msg or (group.count is not None and len(group.items) >= group.count):
            self._complete(parts["id"])

    # ------------------------------------------------------------------ groups
    def _group(self, gid: Any) -> _Group:
        group = self.groups.get(gid)
        if group is None:
            if len(self.groups) >= MAX_GROUPS:
                oldest = next(iter(self.groups))
                self._discard(oldest)
                self.error(f"too many open groups (over {MAX_GROUPS}); dropped {oldest!r}")
            group = self.groups[gid] = _Group()
            if self.timeout > 0:
                loop = asyncio.get_running_loop()
                group.timer = loop.call_later(self.timeout, self._complete, gid)
        return group

    def _discard(self, gid: Any) -> None:
        group = self.groups.pop(gid, None)
        if group is not None and group.timer is not None:
            group.timer.cancel()

    def _drop_all(self) -> None:
        for gid in list(self.groups):
            self._discard(gid)

    def _auto_path(self, parts: dict[str, Any]) -> list[str | int]:
        prop = parts.get("property")
        return compile_path(prop) if isinstance(prop, str) and prop else self.path

    # ------------------------------------------------------------------ manual mode
    def _manual(self, msg: Msg) -> None:
        if "reset" in msg:
            self._discard("_")
            return
        if self.cfg.propertyType == "full":
            value: Any = {k: v for k, v in msg.items() if k not in ("complete", "_msgid")}
        else:
            value = get_path(msg, self.path)
        group = self.groups.get("_") or self._group("_")
        if value is not UNDEFINED:
            build = self.cfg.build
            if build == "object":
                key = get_path(msg, self.key_path)
                if key is not UNDEFINED:
                    name = js_string(key)
                    if name not in group.items:
                        group.keys.append(name)
                    group.items[name] = value
            elif build == "merged":
                if isinstance(value, dict):
                    for name, item in value.items():
                        if name not in group.items:
                            group.keys.append(name)
                        group.items[name] = item
                group.count = (group.count or 0) + 1
            else:
                index = len(group.keys)
                group.keys.append(index)
                group.items[index] = value
        group.msg = msg
        received = group.count if self.cfg.build == "merged" else len(group.items)
        if "complete" in msg or (self.count > 0 and (received or 0) >= self.count):
            self._complete("_")

    # ------------------------------------------------------------------ output
    def _complete(self, gid: Any) -> None:
        group = self.groups.get(gid)
        if group is None:
            return
        keep = (
            self.accumulate
            and self.cfg.mode == "custom"
            and self.cfg.build in ("object", "merged")
            and "complete" not in group.msg
        )
        if not keep:
            self._discard(gid)
        elif group.timer is not None:
            group.timer.cancel()
            group.timer = None
        if not group.items and self.cfg.mode != "reduce":
            return
        out = group.msg
        out.pop("complete", None)
        try:
            result = self._reduce(group) if self.cfg.mode == "reduce" else self._build(group)
        except NodeFailed as exc:
            self.error(str(exc), out)
            return
        if (
            self.cfg.propertyType == "full"
            and self.cfg.mode != "reduce"
            and isinstance(result, dict)
            and self._kind(group) == "merged-full"
        ):
            out = result
        else:
            set_path(
                out,
                self.path if self.cfg.mode != "auto" else self._auto_path(group.parts),
                copy.deepcopy(result) if keep else result,
            )
        if self.cfg.mode == "custom":
            out.pop("parts", None)
        else:
            parent = group.parts.get("parts")
            if parent is None:
                out.pop("parts", None)
            else:
                out["parts"] = parent
        self.send(out)

    def _kind(self, group: _Group) -> str:
        if self.cfg.mode == "auto":
            return str(group.parts.get("type") or "array")
        if self.cfg.build == "merged" and self.cfg.propertyType == "full":
            return "merged-full"
        return self.cfg.build

    def _build(self, group: _Group) -> Any:
        kind = self._kind(group)
        if kind in ("object", "merged", "merged-full"):
            return {k: group.items[k] for k in group.keys}
        ordered = (
            [group.items[k] for k in sorted(group.items)]
            if self.cfg.mode == "auto"
            else [group.items[k] for k in group.keys]
        )
        if kind == "string":
            joiner = group.parts.get("ch", "") if self.cfg.mode == "auto" else self.joiner
            text = joiner if isinstance(joiner, str) else bytes(joiner).decode(errors="replace")
            return text.join(js_string(v) for v in ordered)
        if kind == "buffer":
            joiner = group.parts.get("ch", b"") if self.cfg.mode == "auto" else self.joiner
            sep = joiner.encode() if isinstance(joiner, str) else bytes(joiner or b"")
            return sep.join(v if isinstance(v, bytes) else js_string(v).encode() for v in ordered)
        if self.cfg.mode == "auto" and (group.parts.get("len") or 1) > 1:
            flat: list[Any] = []
            for chunk in ordered:
                flat.extend(chunk if isinstance(chunk, list) else [chunk])
            return flat
        return ordered

    def _reduce(self, group: _Group) -> Any:
        rt = self.rt
        cfg = self.cfg
        count = len(group.items)
        if cfg.reduceInitType in ("", "str"):
            acc: Any = cfg.reduceInit
        else:
            acc = rt.evaluate(cfg.reduceInit, cfg.reduceInitType, group.msg)
        order = sorted(group.items, key=lambda k: js_number(k), reverse=cfg.reduceRight)
        for index in order:
            item = group.items[index]
            acc = evaluate_jsonata(rt, cfg.reduceExp, item, {"A": acc, "I": index, "N": count})
        if cfg.reduceFixup:
            acc = evaluate_jsonata(rt, cfg.reduceFixup, {}, {"A": acc, "N": count})
        return acc
