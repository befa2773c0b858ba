"""The ``split`` node: one message per element of a string, array, object or buffer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, clone_msg, register
from edge_runner.nodes._sequence import (
    UNDEFINED,
    compile_path,
    get_path,
    js_number,
    new_id,
    set_path,
    unescape,
)

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi


class Config(NodeConfig):
    splt: str = "\\n"
    spltType: Literal["str", "bin", "len"] = "str"  # noqa: N815
    arraySplt: int | str = 1  # noqa: N815
    arraySpltType: Literal["len"] = "len"  # noqa: N815
    stream: bool = False
    addname: str = ""
    property: str = "payload"

    def separator(self) -> str | bytes | int:
        if self.spltType == "len":
            size = js_number(self.splt)
            if size != size or size < 1:
                raise ValueError(f"split length must be a positive number, got {self.splt!r}")
            return int(size)
        if self.spltType == "bin":
            try:
                data = json.loads(self.splt)
                return bytes(int(b) & 0xFF for b in data)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"binary separator must be a JSON byte array: {exc}") from exc
        return unescape(self.splt)

    @model_validator(mode="after")
    def _check(self) -> Config:
        self.separator()
        size = js_number(self.arraySplt)
        if size != size or size < 1:
            raise ValueError(f"arraySplt must be a positive number, got {self.arraySplt!r}")
        compile_path(self.property or "payload")
        if self.addname:
            compile_path(self.addname)
        return self


SPEC = NodeSpec(
    type="split",
    version=1,
    category=Category.SEQUENCE,
    inputs=1,
    outputs=1,
    label="split",
    color="#E2D96E",
    icon="split.svg",
    help="""Splits a message into a sequence of messages.

### Inputs
- **payload** *string | array | object | buffer*: the value to split (or *Property*).

### Outputs
One message per piece, each with `msg.parts`: `id` (shared by the sequence), `index`,
`count`, `type` (`string`, `array`, `object`, `buffer`) and `ch` (the separator), `len`
(fixed-length pieces) or `key` (objects). An existing `msg.parts` is kept as `msg.parts.parts`
so a later join can restore it.

### Details
- **String / buffer**: split on a separator (default `\\n`; escapes such as `\\t` are
  understood), a binary separator, or into fixed lengths. In *stream* mode the last partial
  piece is kept and prefixed to the next message, and pieces carry no `count`.
- **Array**: into single elements or fixed-length chunks.
- **Object**: one message per key; *copy key to* writes the key to a message property.

Any other value passes through unchanged.
""",
)

SplitConfig = Config  # the node class's ``Config`` attribute shadows the name inside it


@register
class SplitNode(Node):
    """Split strings, buffers, arrays and objects into a sequence of messages."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, SplitConfig):
            raise TypeError("split node needs its own Config")
        self.cfg = config
        self.sep = config.separator()
        self.array_len = int(js_number(config.arraySplt))
        self.path = compile_path(config.property or "payload")
        self.addname = compile_path(config.addname) if config.addname else None
        self.remainder: str | bytes = ""
        self.stream_id = new_id()
        self.stream_index = 0

    def on_message(self, msg: Msg) -> None:
        value = get_path(msg, self.path)
        if isinstance(value, (str, bytes, bytearray)):
            self._split_text(msg, value if isinstance(value, str) else bytes(value))
        elif isinstance(value, list):
            size = self.array_len
            count = (len(value) + size - 1) // size
            pieces = [
                value[i] if size == 1 else value[i : i + size] for i in range(0, len(value), size)
            ]
            self._emit(msg, pieces, {"type": "array", "count": count, "len": size})
        elif isinstance(value, dict):
            self._split_object(msg, value)
        else:
            self.send(msg)

    def _split_object(self, msg: Msg, value: dict[str, Any]) -> None:
        base = msg.get("parts")
        gid = new_id()
        for index, (key, item) in enumerate(value.items()):
            out = clone_msg({k: v for k, v in msg.items() if k != "parts"})
            set_path(out, self.path, item)
            out["parts"] = {
                "id": gid,
                "type": "object",
                "key": key,
                "index": index,
                "count": len(value),
            }
            self._finish(out, base)
            if self.addname is not None:
                set_path(out, self.addname, key)
            self.send(out)

    def _split_text(self, msg: Msg, value: str | bytes) -> None:
        kind = "string" if isinstance(value, str) else "buffer"
        sep = self.sep
        if isinstance(sep, int):
            ch: Any = ""
        elif kind == "buffer":
            ch = sep if isinstance(sep, bytes) else sep.encode()
        else:
            ch = sep if isinstance(sep, str) else sep.decode("utf-8", errors="replace")
        if self.cfg.stream and self.remainder:
            if isinstance(self.remainder, type(value)):
                value = self.remainder + value  # type: ignore[operator]  # same type checked
            self.remainder = ""
        if isinstance(sep, int):
            pieces = [value[i : i + sep] for i in range(0, len(value), sep)]
        else:
            pieces = list(value.split(ch)) if ch else [value]
        extra: dict[str, Any] = {"type": kind, "ch": ch}
        if isinstance(sep, int):
            extra["len"] = sep
        if not self.cfg.stream or "complete" in msg:
            self._emit(msg, pieces, {**extra, "count": len(pieces)})
            return
        # Stream mode: keep the unfinished tail for the next message; no count is known.
        tail_incomplete = isinstance(sep, int) and pieces and len(pieces[-1]) < sep
        if not isinstance(sep, int) or tail_incomplete:
            self.remainder = pieces.pop() if pieces else ""
        self._emit(msg, pieces, extra, stream=True)

    def _emit(
        self, msg: Msg, pieces: list[Any], extra: dict[str, Any], stream: bool = False
    ) -> None:
        base = msg.get("parts")
        gid = self.stream_id if stream else new_id()
        template = {k: v for k, v in msg.items() if k != "parts"}
        for index, piece in enumerate(pieces):
            out = clone_msg(template)
            set_path(out, self.path, piece)
            parts = {"id": gid, **extra}
            parts["index"] = self.stream_index if stream else index
            if stream:
                self.stream_index += 1
            out["parts"] = parts
            self._finish(out, base)
            self.send(out)

    def _finish(self, out: Msg, base: Any) -> None:
        parts = out["parts"]
        if len(self.path) != 1 or self.path[0] != "payload":
            parts["property"] = self.cfg.property
        if base is not None and base is not UNDEFINED:
            parts["parts"] = base
