"""``window``: rolling windows per tag (by count or by time) reduced to a feature vector
(mean, std, min, max, RMS, peak, peak-to-peak) -- the input an anomaly model eats."""

from __future__ import annotations

import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    clone_msg,
    get_property,
    new_msgid,
    parse_path,
    register,
)

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi

Feature = Literal["mean", "std", "min", "max", "rms", "peak", "p2p"]
ALL_FEATURES: tuple[Feature, ...] = ("mean", "std", "min", "max", "rms", "peak", "p2p")
# A time window keeps at most this many samples per tag (bounded memory at any input rate).
MAX_SAMPLES = 100_000
MAX_TAGS = 10_000


class Config(NodeConfig):
    property: str = "payload"
    mode: Literal["count", "time"] = "count"
    size: int = 10  # samples (count mode)
    duration: float = 10.0  # seconds (time mode)
    emit: Literal["every", "full"] = "every"  # every N samples (sliding) or when full (tumbling)
    every: int = 1
    minSamples: int = 0  # noqa: N815  # 0 = a full window in count mode, 1 in time mode
    features: tuple[Feature, ...] = ALL_FEATURES
    tags: tuple[str, ...] = ()  # combine these tags into one vector, in this order

    @field_validator("features", "tags", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _check(self) -> Config:
        parse_path(self.property)
        if not 1 <= self.size <= MAX_SAMPLES:
            raise ValueError(f"size must be 1..{MAX_SAMPLES}, got {self.size}")
        if not 0 < self.duration <= 86_400 * 7:
            raise ValueError(f"duration must be > 0 and at most a week, got {self.duration}")
        if self.every < 1:
            raise ValueError(f"every must be at least 1, got {self.every}")
        if self.minSamples < 0:
            raise ValueError("minSamples must not be negative")
        if not self.features:
            raise ValueError("choose at least one feature")
        if len(set(self.features)) != len(self.features):
            raise ValueError("features are listed twice")
        if len(set(self.tags)) != len(self.tags):
            raise ValueError("tags are listed twice")
        return self


SPEC = NodeSpec(
    type="window",
    version=1,
    category=Category.AI,
    inputs=1,
    outputs=1,
    label="window features",
    color="#C7A4E8",
    icon="window.svg",
    help="""Keeps a rolling window per tag and sends its features as a vector.

### Inputs
- **payload**: a reading `{tag, value, timestamp?}` (as `tag-context` sends), an array of
  readings, or a bare number (the tag is `msg.topic`).

### Outputs
- **payload** *number[]*: the feature vector, ready for `onnx-infer`.
- **features** *string[]*: the names, e.g. `["mean", "std", …]`, or
  `["vibration.mean", …, "current.mean", …]` when *Tags* combines several tags.
- **tag** *string*, **window** *object*: `{count, start, end}` (ms; for combined tags per tag).

### Details
*Mode*: **count** keeps the last *Size* samples; **time** keeps the samples of the last
*Duration* seconds (by reading timestamp when present, else arrival time; at most
100 000 per tag).
*Emit*: **every** *N* new samples once the window holds *Min samples* (default: a full window
for count, one sample for time) — a sliding window; **full** once the count window is full,
then starts a new one (tumbling; for time windows: once the duration is covered).
Features: `mean`, `std` (population), `min`, `max`, `rms`, `peak` (largest |x|), `p2p`
(max - min).
With *Tags* set, the node combines those tags: every *N* messages it sends one vector with each
tag's features in the given order, as soon as every tag has enough samples; other tags are
ignored. A value that is not a number is an error routed to `catch` nodes.
""",
)


def features_of(values: list[float], names: tuple[Feature, ...]) -> list[float]:
    n = len(values)
    mean = math.fsum(values) / n
    low, high = min(values), max(values)
    out: list[float] = []
    for name in names:
        if name == "mean":
            out.append(mean)
        elif name == "std":
            out.append(math.sqrt(math.fsum((v - mean) ** 2 for v in values) / n))
        elif name == "min":
            out.append(low)
        elif name == "max":
            out.append(high)
        elif name == "rms":
            out.append(math.sqrt(math.fsum(v * v for v in values) / n))
        elif name == "peak":
            out.append(max(abs(low), abs(high)))
        else:
            out.append(high - low)
    return out


class _Series:
    __slots__ = ("samples", "since_emit")

    def __init__(self, limit: int) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=limit)
        self.since_emit = 0


@register
class WindowNode(Node):
    """Rolling windows per tag reduced to a feature vector for a model."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, Config):
            raise TypeError("window needs its own Config")
        self.cfg = config
        self.parts = parse_path(config.property)
        self.count_mode = config.mode == "count"
        self.limit = config.size if self.count_mode else MAX_SAMPLES
        self.min_samples = config.minSamples or (config.size if self.count_mode else 1)
        self.series: dict[str, _Series] = {}
        self.combined_since_emit = 0

    def on_message(self, msg: Msg) -> None:
        payload = get_property(msg, self.parts)
        items = payload if isinstance(payload, list) else [payload]
        touched: list[str] = []
        now_ms = time.time() * 1000.0
        for item in items:
            if isinstance(item, dict):
                tag = str(item.get("tag") or msg.get("topic") or "")
                value, stamp = item.get("value"), item.get("timestamp")
            else:
                tag, value, stamp = str(msg.get("topic") or ""), item, None
            if self.cfg.tags and tag not in self.cfg.tags:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value))
            ):
                raise NodeFailed(f"value of tag {tag!r} is not a finite number: {value!r}")
            at = (
                float(stamp)
                if isinstance(stamp, (int, float)) and not isinstance(stamp, bool)
                else now_ms
            )
            self._add(tag, float(value), at)
            touched.append(tag)
        if not touched:
            return
        if self.cfg.tags:
            self._emit_combined(msg)
        else:
            ready = [tag for tag in dict.fromkeys(touched) if self._ready(self.series[tag])]
            if not ready:
                return
            # copies are taken before anything is sent: a downstream node may change msg
            outs = [msg] + [{**clone_msg(msg), "_msgid": new_msgid()} for _ in ready[1:]]
            for out, tag in zip(outs, ready, strict=True):
                self._emit_tag(out, tag)

    def _add(self, tag: str, value: float, at: float) -> None:
        series = self.series.get(tag)
        if series is None:
            if len(self.series) >= MAX_TAGS:
                raise NodeFailed(f"more than {MAX_TAGS} tags in one window node")
            series = self.series[tag] = _Series(self.limit)
        samples = series.samples
        samples.append((at, value))
        series.since_emit += 1
        if not self.count_mode and self.cfg.emit == "every":
            # tumbling time windows are cleared when sent, so they need no eviction
            horizon = at - self.cfg.duration * 1000.0
            while samples and samples[0][0] <= horizon:
                samples.popleft()

    def _ready(self, series: _Series) -> bool:
        cfg = self.cfg
        if cfg.emit == "full":
            if self.count_mode:
                return len(series.samples) >= cfg.size and series.since_emit >= cfg.size
            return series.samples[-1][0] - series.samples[0][0] >= cfg.duration * 1000.0
        return len(series.samples) >= self.min_samples and series.since_emit >= cfg.every

    def _emit_tag(self, msg: Msg, tag: str) -> None:
        series = self.series[tag]
        samples = series.samples
        values = [v for _, v in samples]
        msg["payload"] = features_of(values, self.cfg.features)
        msg["features"] = list(self.cfg.features)
        msg["tag"] = tag
        msg["window"] = {"count": len(values), "start": samples[0][0], "end": samples[-1][0]}
        series.since_emit = 0
        if self.cfg.emit == "full":
            samples.clear()
        self.send(msg)

    def _emit_combined(self, msg: Msg) -> None:
        cfg = self.cfg
        self.combined_since_emit += 1
        every = cfg.size if cfg.emit == "full" and self.count_mode else cfg.every
        if self.combined_since_emit < every:
            return
        vector: list[float] = []
        names: list[str] = []
        windows: dict[str, Any] = {}
        for tag in cfg.tags:
            series = self.series.get(tag)
            if series is None or len(series.samples) < self.min_samples:
                return
            samples = series.samples
            vector.extend(features_of([v for _, v in samples], cfg.features))
            names.extend(f"{tag}.{name}" for name in cfg.features)
            windows[tag] = {"count": len(samples), "start": samples[0][0], "end": samples[-1][0]}
        self.combined_since_emit = 0
        for tag in cfg.tags:
            series = self.series[tag]
            series.since_emit = 0
            if cfg.emit == "full":
                series.samples.clear()
        msg["payload"] = vector
        msg["features"] = names
        msg["tag"] = ",".join(cfg.tags)
        msg["window"] = windows
        self.send(msg)
