"""The ``trigger`` node: send a message, then optionally a second one after a delay."""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, clone_msg, register
from edge_runner.nodes._sequence import (
    UNDEFINED,
    compile_path,
    duration_ms,
    get_path,
    js_number,
    js_string,
)
from edge_runner.nodes.template import TemplateError, _Renderer, parse_mustache

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi

OpType = Literal[
    "str",
    "num",
    "bool",
    "json",
    "bin",
    "date",
    "env",
    "flow",
    "global",
    "jsonata",
    "pay",
    "payl",
    "nul",
    "val",
    "null",
]


class Config(NodeConfig):
    op1: Any = "1"
    op2: Any = "0"
    op1type: OpType = "str"
    op2type: OpType = "str"
    duration: str | float = "250"
    extend: bool | str = False
    overrideDelay: bool = False  # noqa: N815
    units: Literal["ms", "s", "min", "hr"] = "ms"
    reset: str = ""
    bytopic: Literal["all", "topic"] = "all"
    topic: str = "topic"
    outputs: int = 1
    # Written by very old editors; accepted and ignored.
    second: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Config:
        number = js_number(self.duration)
        if number != number:
            raise ValueError(f"duration must be a number, got {self.duration!r}")
        if self.outputs not in (1, 2):
            raise ValueError("outputs must be 1 or 2")
        compile_path(self.topic or "topic")
        for op, optype in ((self.op1, self.op1type), (self.op2, self.op2type)):
            if optype == "str" and isinstance(op, str) and "{{" in op:
                try:
                    parse_mustache(op)
                except TemplateError as exc:
                    raise ValueError(f"invalid mustache in {op!r}: {exc}") from exc
        return self


SPEC = NodeSpec(
    type="trigger",
    version=1,
    category=Category.FUNCTION,
    inputs=1,
    outputs=1,
    dynamic_outputs="outputs",
    label="trigger",
    color="#E6E0F8",
    icon="trigger.svg",
    help="""When triggered, sends a message and then, optionally, a second message after a
delay (unless extended or reset).

### Inputs
- **delay** *number*: the delay in milliseconds (when *override delay with msg.delay* is set).
- **reset**: when present (or when the payload equals the *reset* value), the timer is
  cleared and nothing is sent.

### Outputs
The first message (*send*: a value, the original message, or nothing) and, after the delay,
the second (*then send*: a value, the original or the latest payload, or nothing). With two
outputs the second message goes to output 2.

### Details
While the timer runs, further messages are ignored; with *extend delay* each one restarts it.
A duration of 0 waits until reset; a negative duration resends the first message every
|duration|. *Handling* `topic` keeps one timer per `msg.topic` (or the configured property).
String values containing `{{...}}` are rendered as mustache templates with the message.
""",
)

TriggerConfig = Config  # the node class's ``Config`` attribute shadows the name inside it

_UNITS = {"ms": "ms", "s": "seconds", "min": "minutes", "hr": "hours"}


class _Topic:
    __slots__ = ("m2", "timer", "waiting")

    def __init__(self) -> None:
        self.timer: asyncio.TimerHandle | None = None
        self.waiting = False  # duration 0: blocked until reset
        self.m2: Any = UNDEFINED


@register
class TriggerNode(Node):
    """Send op1 now and op2 after the duration, per topic or for all messages."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, TriggerConfig):
            raise TypeError("trigger node needs its own Config")
        self.cfg = config
        # Node-RED falls back to "1"/"0" for an empty value (``n.op1 || "1"``).
        op1 = config.op1 if config.op1 not in ("", None) else "1"
        op2 = config.op2 if config.op2 not in ("", None) else "0"
        self.op1, self.op1type = _legacy(op1, config.op1type)
        self.op2, self.op2type = _legacy(op2, config.op2type)
        duration = duration_ms(config.duration, _UNITS[config.units])
        self.loop = duration < 0
        self.duration = abs(duration)
        self.extend = config.extend in (True, "true")
        self.topic_path = compile_path(config.topic or "topic")
        self.topics: dict[Any, _Topic] = {}
        self.renderer = _Renderer(lambda _name: "", escape_strings=False)

    async def stop(self) -> None:
        for state in self.topics.values():
            if state.timer is not None:
                state.timer.cancel()
        self.topics.clear()

    def on_message(self, msg: Msg) -> None:
        key: Any = "_none"
        if self.cfg.bytopic == "topic":
            value = get_path(msg, self.topic_path)
            key = js_string(value) if value not in (UNDEFINED, None, "", 0, False) else "_none"
        payload = msg.get("payload", UNDEFINED)
        if "reset" in msg or (
            self.cfg.reset != ""
            and payload not in (UNDEFINED, None)
            and js_string(payload) == self.cfg.reset
        ):
            state = self.topics.pop(key, None)
            if state is not None and state.timer is not None:
                state.timer.cancel()
            self.status()
            return
        if self.cfg.overrideDelay and "delay" in msg:
            delay = js_number(msg["delay"])
            if delay == delay:
                self.duration = float(delay)
        state = self.topics.get(key)
        if state is None or self.loop:
            state = state or self.topics.setdefault(key, _Topic())
            self._first(msg, key, state)
        elif self.extend and self.duration > 0:
            if self.op2type == "payl":
                state.m2 = copy.deepcopy(payload)
            if state.timer is not None:
                state.timer.cancel()
            state.timer = self._schedule(msg, key)
        elif self.op2type == "payl":
            state.m2 = copy.deepcopy(payload)

    def _first(self, msg: Msg, key: Any, state: _Topic) -> None:
        if self.op2type in ("pay", "payl"):
            state.m2 = copy.deepcopy(msg.get("payload", UNDEFINED))
        elif self.op2type != "nul":
            state.m2 = self._value(self.op2, self.op2type, msg)
        if self.op1type != "pay" and self.op1type != "nul":
            value = self._value(self.op1, self.op1type, msg)
            if value is UNDEFINED:
                msg.pop("payload", None)
            else:
                msg["payload"] = value
        if self.duration == 0:
            state.waiting = True
        elif self.loop:
            if state.timer is not None:
                state.timer.cancel()
            if self.op1type != "nul":
                self._repeat(clone_msg(msg), key)
        elif state.timer is None:
            state.timer = self._schedule(msg, key)
        self.status("blue", "dot", " ")
        if self.op1type != "nul":
            self.send(clone_msg(msg))

    def _schedule(self, msg: Msg, key: Any) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(self.duration / 1000, self._second, msg, key)

    def _second(self, msg: Msg, key: Any) -> None:
        state = self.topics.pop(key, None)
        self.status()
        if self.op2type == "nul" or state is None:
            return
        second = clone_msg(msg)
        if self.op2type in ("flow", "global"):
            state.m2 = self._value(self.op2, self.op2type, msg)
        if state.m2 is UNDEFINED:
            second.pop("payload", None)
        else:
            second["payload"] = state.m2
        if self.cfg.outputs == 2:
            self.send([None, second])
        else:
            self.send(second)

    def _repeat(self, msg: Msg, key: Any) -> None:
        def fire() -> None:
            state = self.topics.get(key)
            if state is None:
                return
            state.timer = asyncio.get_running_loop().call_later(self.duration / 1000, fire)
            self.send(clone_msg(msg))

        state = self.topics[key]
        state.timer = asyncio.get_running_loop().call_later(self.duration / 1000, fire)

    def _value(self, value: Any, vtype: str, msg: Msg) -> Any:
        if vtype == "str" and isinstance(value, str) and "{{" in value:
            out: list[str] = []
            self.renderer.render(parse_mustache(value), [msg], out)
            return "".join(out)
        if vtype == "null":
            return None
        if vtype in ("flow", "global"):
            context = self.rt.flow if vtype == "flow" else self.rt.global_
            return context.get(str(value), UNDEFINED)
        if vtype == "num":
            number = js_number(value)
            return number if number == number else value
        return self.rt.evaluate(value, vtype, msg)


def _legacy(value: Any, vtype: str) -> tuple[Any, str]:
    """Node-RED's ``val`` type: a literal string, or true/false/null spelled exactly so."""
    if vtype == "val":
        if value in ("true", "false"):
            return value, "bool"
        if value == "null":
            return None, "null"
        return value, "str"
    if value == "null" and vtype not in ("str", "json"):
        return None, "null"
    return value, vtype
