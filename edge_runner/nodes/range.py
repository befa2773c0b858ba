"""The ``range`` node: map a numeric property from one range onto another."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, register
from edge_runner.nodes._sequence import UNDEFINED, compile_path, get_path, js_number, set_path

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi


class Config(NodeConfig):
    minin: str | float = ""
    maxin: str | float = ""
    minout: str | float = ""
    maxout: str | float = ""
    action: Literal["scale", "clamp", "roll", "drop"] = "scale"
    round: bool = False
    property: str = "payload"

    def bounds(self) -> tuple[float, float, float, float]:
        values = []
        for name in ("minin", "maxin", "minout", "maxout"):
            raw = getattr(self, name)
            number = js_number(raw) if raw != "" else math.nan
            if number != number or math.isinf(number):
                raise ValueError(f"{name} must be a number, got {raw!r}")
            values.append(float(number))
        return values[0], values[1], values[2], values[3]

    @model_validator(mode="after")
    def _check(self) -> Config:
        minin, maxin, _, _ = self.bounds()
        if minin == maxin:
            raise ValueError("minin and maxin must differ (the input range is empty)")
        compile_path(self.property or "payload")
        return self


SPEC = NodeSpec(
    type="range",
    version=1,
    category=Category.FUNCTION,
    inputs=1,
    outputs=1,
    label="range",
    color="#E2D96E",
    icon="range.svg",
    help="""Maps a numeric value from an input range onto an output range.

### Inputs
- **payload** *number | string*: the value to map (or the property named in *Property*).
  Strings are converted like JavaScript's `Number()`.

### Outputs
- **payload** *number*: the mapped value.

### Details
- *Scale* maps linearly, extrapolating values outside the input range.
- *Scale and limit* (`clamp`) limits the input to the input range first.
- *Scale and wrap* (`roll`) wraps the input into the input range (modulo), so 370 degrees
  becomes 10.
- *Scale, but drop if outside input range* (`drop`) sends nothing for such values.

*Round* rounds the result to the nearest integer. A message without the property is passed on
unchanged; a value that is not a number is logged and the message dropped.
""",
)


@register
class RangeNode(Node):
    """Scale a number from one range to another (scale, clamp, wrap or drop)."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, Config):
            raise TypeError("range node needs its own Config")
        self.minin, self.maxin, self.minout, self.maxout = config.bounds()
        self.span_in = self.maxin - self.minin
        self.span_out = self.maxout - self.minout
        self.action = config.action
        self.round = config.round
        self.parts = compile_path(config.property or "payload")
        first = self.parts[0]
        self.key = first if len(self.parts) == 1 and isinstance(first, str) else None
        self._send = runtime.send

    def on_message(self, msg: Msg) -> None:
        key = self.key
        value = msg.get(key, UNDEFINED) if key is not None else get_path(msg, self.parts)
        if value is UNDEFINED:
            self._send(msg)
            return
        n = value if type(value) in (int, float) else js_number(value)
        if n != n:
            self.log(f"Not a number: {value}")
            return
        action = self.action
        if action == "drop":
            if n < self.minin or n > self.maxin:
                return
        elif action == "clamp":
            n = self.minin if n < self.minin else self.maxin if n > self.maxin else n
        elif action == "roll":
            span = self.span_in
            n = math.fmod(math.fmod(n - self.minin, span) + span, span) + self.minin
        result = (n - self.minin) / self.span_in * self.span_out + self.minout
        out: Any
        if self.round:
            out = math.floor(result + 0.5)
        else:
            out = int(result) if result.is_integer() else result  # 500, not 500.0, like JS
        if key is not None:
            msg[key] = out
        else:
            set_path(msg, self.parts, out)
        self._send(msg)
