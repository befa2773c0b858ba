"""The ``sort`` node: sort an array property, or the messages of a sequence."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeFailed, NodeSpec, register
from edge_runner.nodes._sequence import (
    compile_path,
    get_path,
    js_compare,
    js_number,
    require_parts,
    set_path,
)
from edge_runner.runtime.typed import compile_jsonata, evaluate_jsonata

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi

MAX_HELD = 10_000  # messages of unfinished sequences; past this they are dropped with an error


class Config(NodeConfig):
    order: Literal["ascending", "descending"] = "ascending"
    as_num: bool = False
    target: str = "payload"
    targetType: Literal["msg", "seq"] = "msg"  # noqa: N815
    msgKey: str = "payload"  # noqa: N815
    msgKeyType: Literal["elem", "jsonata"] = "elem"  # noqa: N815
    seqKey: str = "payload"  # noqa: N815
    seqKeyType: Literal["msg", "jsonata"] = "msg"  # noqa: N815

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.targetType == "msg":
            compile_path(self.target or "payload")
        key, key_type = (
            (self.msgKey, self.msgKeyType)
            if self.targetType == "msg"
            else (self.seqKey, self.seqKeyType)
        )
        if key_type == "jsonata":
            try:
                compile_jsonata(key)
            except NodeFailed as exc:
                raise ValueError(str(exc)) from exc
        elif key_type == "msg":
            compile_path(key or "payload")
        return self


SPEC = NodeSpec(
    type="sort",
    version=1,
    category=Category.SEQUENCE,
    inputs=1,
    outputs=1,
    label="sort",
    color="#E2D96E",
    icon="sort.svg",
    help="""Sorts a message property or a sequence of messages.

### Inputs
- **payload** *array*: the array to sort (or *Property*), or
- **parts** *object*: a message of a sequence (from split), when sorting a sequence.

### Outputs
The message with the sorted array, or the messages of the sequence in the new order with
`parts.index` renumbered.

### Details
The key is the element itself or a JSONata expression on it (arrays), or a message property
or JSONata expression on each message (sequences). Keys compare like JavaScript (`<`), or as
numbers with *as number*. Sequences are held until complete (at most 10000 messages).
""",
)

SortConfig = Config  # the node class's ``Config`` attribute shadows the name inside it


@register
class SortNode(Node):
    """Sort an array, or the messages of a sequence, by a key."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, SortConfig):
            raise TypeError("sort node needs its own Config")
        self.cfg = config
        self.target = compile_path(config.target or "payload")
        by_property = config.seqKeyType == "msg"
        self.seq_key = compile_path(config.seqKey or "payload") if by_property else []
        self.pending: dict[Any, list[Msg]] = {}
        self.held = 0

    async def stop(self) -> None:
        self.pending.clear()
        self.held = 0

    def on_message(self, msg: Msg) -> None:
        if self.cfg.targetType == "msg":
            value = get_path(msg, self.target)
            if isinstance(value, list):
                if self.cfg.msgKeyType == "jsonata":
                    keys = [evaluate_jsonata(self.rt, self.cfg.msgKey, item) for item in value]
                else:
                    keys = list(value)
                set_path(msg, self.target, [value[i] for i in self._order(keys)])
            self.send(msg)
            return
        parts = require_parts(msg)
        if parts is None:
            raise NodeFailed("sort of a sequence needs msg.parts")
        group = self.pending.setdefault(parts["id"], [])
        group.append(msg)
        self.held += 1
        if self.held > MAX_HELD:
            self.pending.clear()
            self.held = 0
            raise NodeFailed(f"too many pending messages (over {MAX_HELD}); sequences dropped")
        count = next((m["parts"].get("count") for m in group if "count" in m["parts"]), None)
        if count != len(group):
            return
        del self.pending[parts["id"]]
        self.held -= len(group)
        if self.cfg.seqKeyType == "jsonata":
            keys = [evaluate_jsonata(self.rt, self.cfg.seqKey, m) for m in group]
        else:
            keys = [get_path(m, self.seq_key) for m in group]
        for index, position in enumerate(self._order(keys)):
            out = group[position]
            out["parts"]["index"] = index
            self.send(out)

    def _order(self, keys: list[Any]) -> list[int]:
        as_num = self.cfg.as_num
        sign = -1 if self.cfg.order == "descending" else 1

        def compare(i: int, j: int) -> int:
            a, b = keys[i], keys[j]
            if as_num:
                x, y = js_number(a), js_number(b)
                result = 0 if x != x or y != y else (x > y) - (x < y)
            else:
                result = js_compare(a, b) or 0
            return sign * result

        return sorted(range(len(keys)), key=functools.cmp_to_key(compare))
