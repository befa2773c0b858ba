"""The ``rbe`` node (Node-RED's *filter*): report by exception and dead/narrow bands."""

from __future__ import annotations

import copy
import math
import re
from typing import Any, ClassVar, Literal, cast

from pydantic import field_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeSpec,
    get_property,
    parse_path,
    register,
)
from edge_runner.runtime.typed import to_number

_MISSING = object()
_NO_TOPIC = "_no_topic"
_LEADING_FLOAT = re.compile(r"\s*([+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))")

Func = Literal["rbe", "rbei", "deadband", "deadbandEq", "narrowband", "narrowbandEq"]


class Config(NodeConfig):
    func: Func = "rbe"
    gap: str = ""
    start: str = ""
    inout: Literal["in", "out"] = "out"
    septopics: bool = True
    property: str = "payload"
    topi: str = "topic"

    @field_validator("gap", "start", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return "" if value is None else value

    @field_validator("gap")
    @classmethod
    def _valid_gap(cls, value: str) -> str:
        text = value.strip()
        number = text[:-1] if text.endswith("%") else text
        if number and math.isnan(parse_float(number)):
            raise ValueError(f"gap must be a number or a percentage, not {value!r}")
        return text

    @field_validator("start")
    @classmethod
    def _valid_start(cls, value: str) -> str:
        if value.strip() and math.isnan(float(to_number(value))):
            raise ValueError(f"start value must be a number, not {value!r}")
        return value.strip()

    @field_validator("property", "topi")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        parse_path(value)
        return value


SPEC = NodeSpec(
    type="rbe",
    version=1,
    category=Category.FUNCTION,
    inputs=1,
    outputs=1,
    label="filter",
    color="#E2D96E",
    icon="rbe.png",
    help="""Report by exception: passes a message on only when its value changes, or when a
number moves by more (dead band) or less (narrow band) than a given amount.

### Inputs
- **payload** *any*: the value watched (or the property named in *Property*).
- **topic** *string*: with *separate topics* each topic keeps its own last value (the property
  is set by *topi*).
- **reset** *any*: clears the stored value (of the message's topic, or of all topics).

### Outputs
- **payload**: the message, unchanged, when it passes the filter.

### Details
- `rbe`: block unless the value changes (objects are compared deeply).
- `rbei`: as `rbe` but also block the very first value.
- `deadband` / `deadbandEq`: block unless the number changes by more than (or at least) *gap*.
- `narrowband` / `narrowbandEq`: block if the number changes by more than (or at least) *gap*;
  *start* seeds the comparison value.

*gap* is absolute, or a percentage of the last value when it ends in `%`. *inout* chooses
whether the comparison is against the last **out**put value or the last **in**put value.
Non-numeric values in the band modes are ignored with a warning.
""",
)


def parse_float(value: Any) -> float:
    """JavaScript ``parseFloat``: the leading number of the text, NaN when there is none."""
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        value = ",".join("" if v is None else str(v) for v in value)
    if not isinstance(value, str):
        return math.nan
    match = _LEADING_FLOAT.match(value)
    if not match:
        return math.nan
    text = match.group(1)
    if text.lstrip("+-") == "Infinity":
        return -math.inf if text.startswith("-") else math.inf
    return float(text)


def _is_object(value: Any) -> bool:
    return value is None or isinstance(value, (dict, list, bytes, bytearray))


def _strict_equal(a: Any, b: Any) -> bool:
    """JavaScript ``===`` for scalars: ``True`` is not ``1``."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return False
    return bool(a == b)


@register
class RbeNode(Node):
    """Filter: pass a message on only when its value changed (or moved out of/into a band)."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        config = cast(Config, config)
        self.func = config.func
        self.percent = config.gap.endswith("%")
        self.g = parse_float(config.gap.rstrip("%")) if config.gap else 0.0
        self.start_value: float | None = float(to_number(config.start)) if config.start else None
        self.inout = config.inout
        self.septopics = config.septopics
        self.path = parse_path(config.property)
        self.topic_path = parse_path(config.topi)
        self.previous: dict[Any, Any] = {}

    def _key(self, topic: Any) -> Any:
        if not self.septopics or topic in (None, "", 0, False):
            return _NO_TOPIC
        return topic if isinstance(topic, (str, int, float)) else str(topic)

    def on_message(self, msg: Msg) -> None:
        topic = get_property(msg, self.topic_path)
        if "reset" in msg:
            if self.septopics and isinstance(topic, str) and topic:
                self.previous.pop(topic, None)
            else:
                self.previous = {}
        value = get_property(msg, self.path, _MISSING)
        if value is _MISSING:
            return
        key = self._key(topic)
        if self.func in ("rbe", "rbei"):
            self._by_exception(msg, key, value)
        else:
            self._band(msg, key, value)

    def _by_exception(self, msg: Msg, key: Any, value: Any) -> None:
        do_send = self.func != "rbei" or key in self.previous
        previous = self.previous.get(key, _MISSING)
        if _is_object(value):
            if previous is _MISSING or not _is_object(previous):
                previous = {}
            changed = not (type(previous) is type(value) and previous == value)
        else:
            changed = previous is _MISSING or not _strict_equal(value, previous)
        if changed:
            self.previous[key] = copy.deepcopy(value)
            if do_send:
                self.send(msg)

    def _band(self, msg: Msg, key: Any, value: Any) -> None:
        n = parse_float(value)
        if math.isnan(n):
            self.warn("no number found in payload")
            return
        func = self.func
        previous: float | None = self.previous.get(key)
        if previous is None and func in ("narrowband", "narrowbandEq"):
            previous = n if self.start_value is None else self.start_value
        if self.percent:
            gap = abs(previous * self.g / 100) if previous is not None else 0.0
            if math.isnan(gap):
                gap = 0.0
        else:
            gap = self.g
        if previous is None:
            previous = n if func == "narrowbandEq" else n - gap - 1
        diff = abs(n - previous)
        send = False
        if diff == gap:
            send = func in ("deadbandEq", "narrowband")
        elif diff > gap:
            send = func in ("deadband", "deadbandEq")
        elif diff < gap:
            send = func in ("narrowband", "narrowbandEq")
        if send and self.inout == "out":
            previous = n
        if self.inout == "in":
            previous = n
        self.previous[key] = previous
        if send:
            self.send(msg)
