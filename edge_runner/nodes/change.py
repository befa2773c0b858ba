"""The ``change`` node: set, change (search/replace), delete and move message or context
properties, with Node-RED's rule format (and its legacy single-rule format)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    path_text,
    register,
    resolve_path,
)
from edge_runner.lib.context_keys import parse_context_store
from edge_runner.nodes._sequence import (
    UNDEFINED,
    compile_path,
    delete_path,
    get_path,
    js_number,
    js_regex,
    js_replacement,
    js_string,
    set_path,
)
from edge_runner.runtime.typed import compile_jsonata, evaluate_jsonata

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi

ValueType = Literal[
    "str", "num", "bool", "json", "bin", "date", "jsonata", "env", "msg", "flow", "global"
]


class Rule(BaseModel):
    """One rule of a change node, spelled as Node-RED writes it."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    t: Literal["set", "change", "delete", "move"]
    p: str = ""
    pt: Literal["msg", "flow", "global"] = "msg"
    to: Any = ""
    tot: ValueType | None = None
    from_: Any = Field("", alias="from")
    fromt: Literal["str", "num", "bool", "re", "msg", "flow", "global", "env"] | None = None
    dc: bool = False
    re: bool | None = None  # legacy: "from is a regular expression"

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if not str(self.p).strip():
            raise ValueError(f"rule '{self.t}' needs a property (p)")
        if self.pt == "msg":
            compile_path(self.p)
        elif "[msg" in self.p:
            compile_path(parse_context_store(self.p)[1])
        tot = _to_type(self)
        if self.t in ("set", "change") or self.t == "move":
            if tot == "msg" or self.t == "move":
                if not str(self.to).strip():
                    raise ValueError(f"rule '{self.t}' needs a target (to)")
                if tot == "msg":
                    compile_path(str(self.to))
            if tot in ("json", "bin"):
                try:
                    json.loads(str(self.to))
                except ValueError as exc:
                    raise ValueError(f"rule value {self.to!r} is not valid JSON: {exc}") from exc
            if tot == "jsonata":
                try:
                    compile_jsonata(str(self.to))
                except NodeFailed as exc:
                    raise ValueError(str(exc)) from exc
        if self.t == "change" and _from_type(self) == "re":
            js_regex(str(self.from_))
        return self


def _to_type(rule: Rule) -> str:
    if rule.tot:
        return rule.tot
    # Node-RED 0.x wrote set rules as to:"msg.x" without a type.
    if rule.t == "set" and str(rule.to).startswith("msg."):
        return "msg"
    return "str"


def _to_value(rule: Rule) -> Any:
    if not rule.tot and rule.t == "set" and str(rule.to).startswith("msg."):
        return str(rule.to)[4:]
    return rule.to


def _from_type(rule: Rule) -> str:
    if rule.t == "change" and rule.re:
        return "re"
    return rule.fromt or "str"


class Config(NodeConfig):
    rules: tuple[Rule, ...] | None = None
    # The pre-0.18 single-rule format, still read when ``rules`` is absent.
    action: Literal["", "replace", "set", "change", "delete", "move"] = ""
    property: str = ""
    from_: str = Field("", alias="from")
    to: str = ""
    reg: bool | None = False

    def effective_rules(self) -> tuple[Rule, ...]:
        if self.rules is not None:
            return self.rules
        if not self.action:
            return ()
        kind = "set" if self.action == "replace" else self.action
        data: dict[str, Any] = {"t": kind, "p": self.property}
        if kind in ("set", "move"):
            data["to"] = self.to
        elif kind == "change":
            data.update({"from": self.from_, "to": self.to, "re": self.reg is None or self.reg})
        return (Rule.model_validate(data),)

    @model_validator(mode="after")
    def _legacy_rule_is_valid(self) -> Config:
        if self.rules is None and self.action:
            self.effective_rules()
        return self


SPEC = NodeSpec(
    type="change",
    version=1,
    category=Category.FUNCTION,
    inputs=1,
    outputs=1,
    label="change",
    color="#E2D96E",
    icon="swap.svg",
    help="""Set, change, delete or move properties of a message, or of flow/global context.

### Inputs
Any message.

### Outputs
The same message after every rule has been applied in order.

### Details
- **Set** a property to a value: a string, number, boolean, JSON, buffer, timestamp, JSONata
  expression, environment variable, or another msg/flow/global property (with *deep copy*).
  Missing parent objects are created; setting from a property that does not exist removes the
  target instead.
- **Change** searches a string property for a value (string, number, boolean, regular
  expression, or a msg/flow/global value) and replaces every match. Regular expressions use
  `$1`, `$&` like JavaScript. When the whole string equals the searched value, the property is
  replaced by the typed value itself (so `"123"` can become the number `456`). Number and
  boolean properties are replaced when they equal the searched number/boolean.
- **Delete** removes the property.
- **Move** sets the target from the property and deletes the property.

A failing JSONata expression reports an error (catchable) and the message is not sent.
""",
)


Op = Callable[[Msg], None]


def _context_key_of(prop: str) -> tuple[str | None, Callable[[Msg], str]]:
    """The store and, per message, the context key of a rule: ``a[msg.topic]`` names
    ``a["line-1"]``."""
    store, key = parse_context_store(prop)
    if "[msg" not in key:
        return store, lambda _msg: key
    parts = compile_path(key)
    return store, lambda msg: path_text(resolve_path(parts, msg))


@register
class ChangeNode(Node):
    """Apply an ordered list of set/change/delete/move rules to each message."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, Config):
            raise TypeError("change node needs its own Config")
        self.ops: tuple[Op, ...] = tuple(self._compile(rule) for rule in config.effective_rules())
        self._send = runtime.send

    def on_message(self, msg: Msg) -> None:
        for op in self.ops:
            op(msg)
        self._send(msg)

    # ------------------------------------------------------------------ rule compilation
    def _compile(self, rule: Rule) -> Op:
        if rule.t == "move":
            read = self._reader(rule.p, rule.pt)
            write = self._writer(str(rule.to), _to_type(rule))
            delete = self._deleter(rule.p, rule.pt)

            def move(msg: Msg) -> None:
                value = read(msg)
                delete(msg)
                write(msg, value)

            return move
        if rule.t == "delete":
            delete = self._deleter(rule.p, rule.pt)
            return delete
        value_of = self._value(rule)
        if rule.t == "set":
            return self._set_op(rule, value_of)
        return self._change_op(rule, value_of)

    def _set_op(self, rule: Rule, value_of: Callable[[Msg], Any]) -> Op:
        parts = compile_path(rule.p) if rule.pt == "msg" else []
        if rule.pt == "msg" and len(parts) == 1 and isinstance(parts[0], str):
            key = parts[0]
            const = getattr(value_of, "const", UNDEFINED)
            if const is not UNDEFINED and isinstance(const, (str, int, float, bool, bytes)):

                def set_const(msg: Msg) -> None:
                    msg[key] = const

                return set_const

            def set_key(msg: Msg) -> None:
                value = value_of(msg)
                if value is UNDEFINED:
                    msg.pop(key, None)
                else:
                    msg[key] = value

            return set_key
        write = self._writer(rule.p, rule.pt)

        def set_any(msg: Msg) -> None:
            write(msg, value_of(msg))

        return set_any

    def _change_op(self, rule: Rule, value_of: Callable[[Msg], Any]) -> Op:
        read = self._reader(rule.p, rule.pt)
        write = self._writer(rule.p, rule.pt)
        fromt = _from_type(rule)
        static_from = js_string(rule.from_) if fromt not in ("msg", "flow", "global") else ""
        static_re = None
        if fromt not in ("msg", "flow", "global"):
            static_re = js_regex(static_from if fromt == "re" else _escape(static_from))
        dynamic = None if static_re is not None else self._reader(str(rule.from_), fromt)

        def change(msg: Msg) -> None:
            current = read(msg)
            if dynamic is None:
                from_type, from_value, pattern = fromt, static_from, static_re
            else:
                from_value = dynamic(msg)
                from_type, pattern = _dynamic_from(from_value)
            if isinstance(current, str):
                if from_type in ("num", "bool", "str") and current == from_value:
                    write(msg, value_of(msg))
                elif pattern is not None:
                    value = value_of(msg)
                    replacement = js_replacement(js_string(value))
                    write(msg, pattern.sub(replacement, current))
            elif isinstance(current, (int, float)) and not isinstance(current, bool):
                if from_type == "num" and current == js_number(from_value):
                    write(msg, value_of(msg))
            elif (
                isinstance(current, bool)
                and from_type == "bool"
                and js_string(current) == from_value
            ):
                write(msg, value_of(msg))

        return change

    # ------------------------------------------------------------------ accessors
    def _reader(self, prop: str, ptype: str) -> Callable[[Msg], Any]:
        if ptype == "msg":
            parts = compile_path(prop)
            return lambda msg: get_path(msg, parts)
        rt = self.rt
        store, key_of = _context_key_of(prop)
        if ptype == "flow":
            return lambda msg: rt.flow.get(key_of(msg), UNDEFINED, store)
        return lambda msg: rt.global_.get(key_of(msg), UNDEFINED, store)

    def _writer(self, prop: str, ptype: str) -> Callable[[Msg, Any], None]:
        if ptype == "msg":
            parts = compile_path(prop)

            def write_msg(msg: Msg, value: Any) -> None:
                if not set_path(msg, parts, value):
                    self.warn(f"Cannot set property of non-object type: {prop}")

            return write_msg
        rt = self.rt
        store, key_of = _context_key_of(prop)

        def write_context(msg: Msg, value: Any) -> None:
            context = rt.flow if ptype == "flow" else rt.global_
            context.set(key_of(msg), None if value is UNDEFINED else value, store)

        return write_context

    def _deleter(self, prop: str, ptype: str) -> Op:
        if ptype == "msg":
            parts = compile_path(prop)
            return lambda msg: delete_path(msg, parts)
        writer = self._writer(prop, ptype)
        return lambda msg: writer(msg, UNDEFINED)

    def _value(self, rule: Rule) -> Callable[[Msg], Any]:
        tot = _to_type(rule)
        raw = _to_value(rule)
        rt = self.rt
        fn: Callable[[Msg], Any]
        if tot in ("str", "num", "bool", "bin", "env"):
            if tot == "str":
                const: Any = js_string(raw)
            elif tot == "num":
                const = js_number(raw)
            elif tot == "bool":
                const = str(raw).strip().lower() == "true"
            elif tot == "bin":
                const = rt.evaluate(str(raw), "bin")
            else:
                # Node-RED resolves env rules once, at deploy.
                const = rt.evaluate(raw, "env")
                if const is None:
                    const = UNDEFINED

            def constant(_msg: Msg) -> Any:
                return const

            constant.const = const  # type: ignore[attr-defined]  # read by _set_op's fast path
            return constant
        if tot == "json":
            parsed = json.loads(str(raw))
            if not isinstance(parsed, (dict, list)):
                return lambda _msg: parsed
            # Every message gets its own copy: the object may be modified downstream.
            return lambda _msg: copy.deepcopy(parsed)
        if tot == "date":
            return lambda msg: rt.evaluate(raw, "date", msg)
        if tot == "jsonata":
            expression = str(raw)

            def jsonata(msg: Msg) -> Any:
                try:
                    return evaluate_jsonata(rt, expression, msg)
                except NodeFailed as exc:
                    raise NodeFailed(f"Invalid JSONata expression: {exc}") from exc

            return jsonata
        fn = self._reader(str(raw), tot)
        if rule.dc:
            return lambda msg: copy.deepcopy(fn(msg))
        return fn


_SPECIALS = set("-[]{}()*+?.,\\^$|#")


def _escape(text: str) -> str:
    """Escape like Node-RED does before turning a search string into a global RegExp."""
    return "".join("\\" + ch if ch in _SPECIALS or ch.isspace() else ch for ch in text)


def _dynamic_from(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return "bool", None
    if isinstance(value, (int, float)):
        return "num", None
    if isinstance(value, str):
        return "str", js_regex(_escape(value))
    raise NodeFailed(f"Invalid 'from' property: unsupported type: {type(value).__name__}")
