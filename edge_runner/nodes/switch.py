"""The ``switch`` node: route each message to the outputs whose rule matches a property."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    clone_msg,
    register,
)
from edge_runner.nodes._sequence import (
    UNDEFINED,
    compile_path,
    context_get,
    get_path,
    js_gt,
    js_gte,
    js_loose_eq,
    js_lt,
    js_lte,
    js_number,
    js_regex,
    js_string,
    js_typeof,
    new_id,
    require_parts,
)
from edge_runner.runtime.typed import compile_jsonata, evaluate_jsonata

if TYPE_CHECKING:
    import re

    from edge_runner.contract import NodeApi

RuleType = Literal[
    "eq",
    "neq",
    "lt",
    "lte",
    "gt",
    "gte",
    "btwn",
    "cont",
    "regex",
    "true",
    "false",
    "null",
    "nnull",
    "istype",
    "empty",
    "nempty",
    "head",
    "tail",
    "index",
    "hask",
    "jsonata_exp",
    "else",
]

# Sequences held back for ``repair``/``tail`` are bounded; past this the pending groups are
# dropped with an error (Node-RED's nodeMessageBufferMaxLength, which defaults to unbounded).
MAX_PENDING = 10_000


class Rule(BaseModel):
    """One switch rule as Node-RED writes it: operator ``t``, value ``v`` (type ``vt``), second
    value ``v2`` (type ``v2t``) for ``btwn``/``index``, ``case`` for case-insensitive regex."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    t: RuleType
    v: Any = ""
    vt: str | None = None
    v2: Any = None
    v2t: str | None = None
    case: bool = False

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.t == "regex" and _value_type(self.v, self.vt) == "str":
            js_regex(str(self.v), "i" if self.case else "")
        for value, vtype in ((self.v, self.vt), (self.v2, self.v2t)):
            if _value_type(value, vtype) == "jsonata":
                try:
                    compile_jsonata(str(value))
                except NodeFailed as exc:
                    raise ValueError(str(exc)) from exc
        return self


def _value_type(value: Any, vtype: str | None) -> str:
    if vtype:
        return vtype
    number = js_number(value)
    return "num" if number == number else "str"


class Config(NodeConfig):
    property: str = "payload"
    propertyType: Literal["msg", "flow", "global", "jsonata", "env"] = "msg"  # noqa: N815
    rules: tuple[Rule, ...] = ()
    checkall: str | bool = "true"
    repair: bool = False
    outputs: int = 1

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.propertyType == "msg":
            compile_path(self.property or "payload")
        elif self.propertyType == "jsonata":
            try:
                compile_jsonata(self.property)
            except NodeFailed as exc:
                raise ValueError(str(exc)) from exc
        if self.outputs < 0:
            raise ValueError("outputs must not be negative")
        return self


SwitchConfig = Config  # the node class's ``Config`` attribute shadows the name inside it

SPEC = NodeSpec(
    type="switch",
    version=1,
    category=Category.FUNCTION,
    inputs=1,
    outputs=1,
    dynamic_outputs="outputs",
    label="switch",
    color="#E2D96E",
    icon="switch.svg",
    help="""Route messages by the value of a property.

### Inputs
Any message. The tested value is a msg, flow or global property, an environment variable or a
JSONata expression (*Property*).

### Outputs
One output per rule: the message goes to every output whose rule matches (*checking all
rules*) or only to the first one (*stopping after first match*).

### Details
Rules: `==`, `!=`, `<`, `<=`, `>`, `>=` (JavaScript comparison), *is between* (bounds in
either order), *contains*, *matches regex* (optionally ignoring case), *is true/false/null/not
null*, *is of type* (string, number - NaN excluded, boolean, array, buffer, object, json,
null, undefined), *is empty/not empty*, *has key*, *head/tail/index between* for message
sequences (`msg.parts`), a JSONata expression (with `$I` index and `$N` count), and
*otherwise*. Rule values may be literals, msg/flow/global properties, JSONata or the
*previous value* of the property.

*Recreate message sequences* (`repair`) rewrites `msg.parts` per output so a following join
sees complete sequences; such sequences are held until complete (at most 10000 messages).
""",
)

Getter = Callable[[Msg], Any]


@register
class SwitchNode(Node):
    """Route each message to the outputs whose rules match."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, Config):
            raise TypeError("switch node needs its own Config")
        self.previous: Any = None
        self.checkall = str(config.checkall).lower() != "false"
        self.repair = config.repair
        self.needs_count = config.repair or any(r.t == "tail" for r in config.rules)
        self.get_property = self._property_getter(config)
        self.tests = [self._compile(rule) for rule in config.rules]
        self.pending_in: dict[Any, dict[str, Any]] = {}
        self.pending_out: dict[Any, list[list[Msg | None]]] = {}
        self.pending_count = 0
        self._send = runtime.send

    # ------------------------------------------------------------------ messages
    def on_message(self, msg: Msg) -> None:
        if self.needs_count and require_parts(msg) is not None:
            self._hold(msg)
            return
        self._process(msg)

    def _process(self, msg: Msg) -> None:
        value = self.get_property(msg)
        onward: list[Msg | None] = []
        elseflag = True
        matched = False
        for test in self.tests:
            if test is None:  # "otherwise"
                ok = elseflag
                elseflag = True
            else:
                ok = test(value, msg)
            if ok:
                # Node-RED's send copies every message after the first.
                onward.append(clone_msg(msg) if matched else msg)
                matched = True
                elseflag = False
                if not self.checkall:
                    break
            else:
                onward.append(None)
        self.previous = value
        if self.repair and require_parts(msg) is not None:
            self._send_repaired(onward, msg)
        elif matched:
            self._send(onward)

    # ------------------------------------------------------------------ sequences
    def _hold(self, msg: Msg) -> None:
        parts = msg["parts"]
        group = self.pending_in.setdefault(parts["id"], {"count": None, "msgs": []})
        group["msgs"].append(msg)
        self._count_pending(1, msg)
        if "count" in parts:
            group["count"] = parts["count"]
        if group["count"] == len(group["msgs"]):
            del self.pending_in[parts["id"]]
            self.pending_count -= len(group["msgs"])
            for held in group["msgs"]:
                held["parts"]["count"] = group["count"]
                self._process(held)

    def _send_repaired(self, onward: list[Msg | None], msg: Msg) -> None:
        parts = msg["parts"]
        group = self.pending_out.setdefault(parts["id"], [])
        group.append(onward)
        self._count_pending(1, msg)
        if len(group) != parts.get("count"):
            return
        del self.pending_out[parts["id"]]
        self.pending_count -= len(group)
        ports = len(self.tests)
        counts = [
            sum(1 for row in group if j < len(row) and row[j] is not None) for j in range(ports)
        ]
        ids = [new_id() for _ in range(ports)]
        indexes = [0] * ports
        for row in group:
            out: list[Msg | None] = []
            for j in range(ports):
                item = row[j] if j < len(row) else None
                if item is None:
                    out.append(None)
                    continue
                copy = clone_msg(item)
                copy["parts"].update(id=ids[j], index=indexes[j], count=counts[j])
                indexes[j] += 1
                out.append(copy)
            self._send(out)

    def _count_pending(self, added: int, msg: Msg) -> None:
        self.pending_count += added
        if self.pending_count > MAX_PENDING:
            self.pending_in.clear()
            self.pending_out.clear()
            self.pending_count = 0
            raise NodeFailed(f"Too many pending messages (over {MAX_PENDING}); sequences dropped")

    async def stop(self) -> None:
        self.pending_in.clear()
        self.pending_out.clear()
        self.pending_count = 0

    # ------------------------------------------------------------------ compilation
    def _property_getter(self, config: SwitchConfig) -> Getter:
        ptype = config.propertyType
        prop = config.property
        rt = self.rt
        if ptype == "msg":
            parts = compile_path(prop or "payload")
            if len(parts) == 1 and isinstance(parts[0], str):
                key = parts[0]
                return lambda msg: msg.get(key, UNDEFINED)
            return lambda msg: get_path(msg, parts)
        if ptype in ("flow", "global"):
            return lambda _msg: context_get(rt, ptype, prop)
        if ptype == "env":
            return lambda _msg: rt.env(prop)
        return lambda msg: evaluate_jsonata(rt, prop, msg)

    def _operand(self, rule: Rule, value: Any, vtype: str | None) -> Getter:
        vt = _value_type(value, vtype)
        rt = self.rt
        if vt == "prev":
            return lambda _msg: self.previous
        if vt == "num":
            number = js_number(value)
            const: Any = number if number == number else value
        elif vt == "str":
            const = "" if value is None else js_string(value)
        elif vt in ("msg", "flow", "global", "jsonata", "env"):
            if vt == "msg":
                parts = compile_path(str(value))
                return lambda msg: get_path(msg, parts)
            if vt in ("flow", "global"):
                return lambda _msg: context_get(rt, vt, str(value))
            if vt == "env":
                return lambda _msg: rt.env(str(value))
            expression = str(value)
            if rule.t == "jsonata_exp":

                def with_parts(msg: Msg) -> Any:
                    parts = require_parts(msg)
                    bindings = {"I": parts["index"], "N": parts.get("count")} if parts else None
                    return evaluate_jsonata(rt, expression, msg, bindings)

                return with_parts
            return lambda msg: evaluate_jsonata(rt, expression, msg)
        elif vt in ("json", "null"):
            const = vt  # Node-RED's getV1 answers the type name itself (used by istype)
        elif vt in ("bool", "bin", "date", "re"):
            return lambda msg: rt.evaluate(value, vt, msg)
        else:
            const = value  # istype names its type in vt ("number", "array" ...)
        return _const_getter(const)

    def _compile(self, rule: Rule) -> Callable[[Any, Msg], bool] | None:
        t = rule.t
        if t == "else":
            return None
        v1 = self._operand(rule, rule.v, rule.vt)
        v2 = self._operand(rule, rule.v2, rule.v2t) if rule.v2 is not None else None
        simple: dict[str, Callable[[Any, Any], bool]] = {
            "eq": js_loose_eq,
            "neq": lambda a, b: not js_loose_eq(a, b),
            "lt": js_lt,
            "lte": js_lte,
            "gt": js_gt,
            "gte": js_gte,
        }
        if t in simple:
            op = simple[t]
            const = _constant(v1)
            if const is not UNDEFINED:
                return lambda a, _msg: op(a, const)
            return lambda a, msg: op(a, v1(msg))
        if t == "btwn":

            def between(a: Any, msg: Msg) -> bool:
                b = v1(msg)
                c = v2(msg) if v2 is not None else UNDEFINED
                return (js_gte(a, b) and js_lte(a, c)) or (js_lte(a, b) and js_gte(a, c))

            return between
        if t == "cont":
            return lambda a, msg: js_string(v1(msg)) in js_string(a)
        if t == "regex":
            flags = "i" if rule.case else ""
            cache: dict[str, re.Pattern[str]] = {}

            def regex(a: Any, msg: Msg) -> bool:
                source = js_string(v1(msg))
                pattern = cache.get(source)
                if pattern is None:
                    try:
                        pattern = js_regex(source, flags)
                    except ValueError as exc:
                        raise NodeFailed(str(exc)) from exc
                    if len(cache) < 64:
                        cache[source] = pattern
                return pattern.search(js_string(a)) is not None

            return regex
        if t in ("true", "false", "null", "nnull", "empty", "nempty"):
            return _UNARY[t]
        if t == "istype":
            return lambda a, msg: _istype(a, js_string(v1(msg)))
        if t == "hask":
            return lambda a, msg: _has_key(a, v1(msg))
        if t == "jsonata_exp":
            return lambda _a, msg: v1(msg) is True
        return self._sequence_rule(t, v1, v2)

    @staticmethod
    def _sequence_rule(t: str, v1: Getter, v2: Getter | None) -> Callable[[Any, Msg], bool]:
        def parts_of(msg: Msg) -> dict[str, Any]:
            parts = msg.get("parts")
            if not isinstance(parts, dict):
                raise NodeFailed(f"rule '{t}' needs a message sequence (msg.parts)")
            return parts

        if t == "head":
            return lambda _a, msg: js_lt(parts_of(msg).get("index"), js_number(v1(msg)))
        if t == "tail":

            def tail(_a: Any, msg: Msg) -> bool:
                parts = parts_of(msg)
                start = js_number(parts.get("count", UNDEFINED)) - js_number(v1(msg))
                return js_lte(start, parts.get("index"))

            return tail

        def index(_a: Any, msg: Msg) -> bool:
            position = parts_of(msg).get("index")
            upper = v2(msg) if v2 is not None else UNDEFINED
            return js_lte(js_number(v1(msg)), position) and js_lte(position, js_number(upper))

        return index


def _constant(getter: Getter) -> Any:
    """The value of a getter that ignores its message, or UNDEFINED when it depends on it."""
    return getattr(getter, "const", UNDEFINED)


def _const_getter(value: Any) -> Getter:
    def constant(_msg: Msg) -> Any:
        return value

    constant.const = value  # type: ignore[attr-defined]  # read by _constant for the fast path
    return constant


def _is_empty(a: Any) -> bool | None:
    if isinstance(a, (str, list, bytes, bytearray, dict)):
        return len(a) == 0
    return None


_UNARY: dict[str, Callable[[Any, Msg], bool]] = {
    "true": lambda a, _m: a is True,
    "false": lambda a, _m: a is False,
    "null": lambda a, _m: a is None or a is UNDEFINED,
    "nnull": lambda a, _m: a is not None and a is not UNDEFINED,
    "empty": lambda a, _m: _is_empty(a) is True,
    "nempty": lambda a, _m: _is_empty(a) is False,
}


def _istype(a: Any, kind: str) -> bool:
    if kind == "array":
        return isinstance(a, list)
    if kind == "buffer":
        return isinstance(a, (bytes, bytearray))
    if kind == "json":
        if a is UNDEFINED:
            return False
        try:
            json.loads(js_string(a))
        except ValueError:
            return False
        return True
    if kind == "null":
        return a is None
    if kind == "number":
        return js_typeof(a) == "number" and a == a  # NaN is excluded
    if isinstance(a, (list, bytes, bytearray)) or a is None:
        return False
    return js_typeof(a) == kind


def _has_key(a: Any, key: Any) -> bool:
    if a is None or a is UNDEFINED or isinstance(key, (dict, list)):
        return False
    name = js_string(key)
    if isinstance(a, dict):
        return name in a
    if isinstance(a, (list, str, bytes)):
        return name == "length" or (name.isdigit() and int(name) < len(a))
    return False
