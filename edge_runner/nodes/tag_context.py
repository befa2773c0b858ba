"""``tag-context``: normalise readings into ``{tag, value, unit, quality, source, timestamp}``
with asset context, whatever shape and clock the source used."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import field_validator

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
from edge_runner.lib.timestamps import (  # re-exported: public names of this node module
    OPCUA_EPOCH as OPCUA_EPOCH,
)
from edge_runner.lib.timestamps import TimeFormat as TimeFormat
from edge_runner.lib.timestamps import opcua_ticks as opcua_ticks
from edge_runner.lib.timestamps import to_epoch_ms as to_epoch_ms

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi

QUALITIES = ("good", "uncertain", "bad")
# keys a reading object may carry (anything else makes it a {tag: value} map)
READING_KEYS = frozenset(
    {
        "tag",
        "value",
        "unit",
        "quality",
        "source",
        "timestamp",
        "sourceTimestamp",
        "serverTimestamp",
        "statusCode",
        "name",
    }
)


class Config(NodeConfig):
    property: str = "payload"
    tag: str = ""  # tag of a bare value; "" = msg.topic
    unit: str = ""
    units: dict[str, str] = {}  # per-tag units for {tag: value} maps
    quality: Literal["good", "uncertain", "bad"] = "good"
    source: str = ""  # "" = msg.topic
    site: str = ""
    line: str = ""
    machine: str = ""
    timeFormat: TimeFormat = "auto"  # noqa: N815
    clockOffset: float = 0  # noqa: N815  # ms added to source timestamps (a skewed clock)
    output: Literal["each", "array"] = "each"

    @field_validator("property")
    @classmethod
    def _path(cls, value: str) -> str:
        parse_path(value)
        return value

    @field_validator("clockOffset", mode="before")
    @classmethod
    def _offset(cls, value: Any) -> Any:
        return 0 if value in ("", None) else value


SPEC = NodeSpec(
    type="tag-context",
    version=1,
    category=Category.INDUSTRIAL,
    inputs=1,
    outputs=1,
    label="tag context",
    color="#A6BBCF",
    icon="tag.svg",
    help="""Normalises readings from any source into one shape and adds asset context.

### Inputs
- **payload**: one of
  - a reading object `{tag?, value, unit?, quality?, source?, timestamp?}` (OPC-UA style
    `sourceTimestamp` / `serverTimestamp` / `statusCode` are understood too);
  - a `{tag: value}` map, as `modbus-read` emits with tags (units from `msg.modbus.units` or
    the node's *Units*);
  - an array of either; or a bare value (the tag is *Tag*, else `msg.topic`).
- **timestamp** *optional*: used when the reading has none; then `msg.modbus.timestamp`,
  else the time of arrival.

### Outputs
- **payload** *object*: `{tag, value, unit, quality, source, timestamp, asset}` where
  `timestamp` is milliseconds since the Unix epoch (UTC) and `asset` is
  `{site, line, machine}` from the node config. With *Output: each* one message per reading
  (`msg.topic` = tag), with *array* one message holding the list.

### Details
Timestamps are aligned from epoch seconds, epoch milliseconds, ISO 8601 strings (a missing
zone means UTC), OPC-UA DateTime (a datetime or 100-ns ticks since 1601) — detected from the
magnitude with *Time format: auto*, or fixed. *Clock offset* (ms) corrects a source whose clock
is known to be off. Quality is `good`, `uncertain` or `bad` (an OPC-UA status code maps by its
severity bits). A reading without a value, or a timestamp that cannot be read, is an error
routed to `catch` nodes.
""",
)


def quality_of(value: Any, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, str) and value.lower() in QUALITIES:
        return value.lower()
    if isinstance(value, dict):
        value = value.get("value", value.get("code"))
    if isinstance(value, int) and not isinstance(value, bool):
        # OPC-UA StatusCode: top two bits are the severity (00 good, 01 uncertain, 10 bad)
        return QUALITIES[min((value >> 30) & 0b11, 2)]
    if isinstance(value, bool):
        return "good" if value else "bad"
    raise NodeFailed(f"quality {value!r} is not good, uncertain, bad or an OPC-UA status code")


@register
class TagContextNode(Node):
    """Normalise readings into {tag, value, unit, quality, source, timestamp} with asset context."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, Config):
            raise TypeError("tag-context needs its own Config")
        self.cfg = config
        self.parts = parse_path(config.property)
        self.asset = {
            k: v
            for k, v in (("site", config.site), ("line", config.line), ("machine", config.machine))
            if v
        }

    def on_message(self, msg: Msg) -> None:
        cfg = self.cfg
        payload = get_property(msg, self.parts)
        if payload is None:
            raise NodeFailed(f"msg.{cfg.property} is missing")
        fallback_time = msg.get("timestamp")
        modbus = msg.get("modbus")
        units: dict[str, Any] = dict(cfg.units)
        if isinstance(modbus, dict):
            if fallback_time is None:
                fallback_time = modbus.get("timestamp")
            if isinstance(modbus.get("units"), dict):
                units.update(modbus["units"])
        default_tag = cfg.tag or str(msg.get("topic") or "")
        source = cfg.source or str(msg.get("topic") or "")
        items = payload if isinstance(payload, list) else [payload]
        readings: list[dict[str, Any]] = []
        now_ms = time.time() * 1000.0
        for item in items:
            if isinstance(item, dict) and not (item.keys() & {"value"}):
                if not item:
                    raise NodeFailed("the reading map is empty")
                for tag, value in item.items():
                    readings.append(
                        self._reading(
                            {"tag": tag, "value": value},
                            str(tag),
                            units,
                            source,
                            fallback_time,
                            now_ms,
                        )
                    )
            else:
                reading = item if isinstance(item, dict) else {"value": item}
                readings.append(
                    self._reading(reading, default_tag, units, source, fallback_time, now_ms)
                )
        if cfg.output == "array":
            msg["payload"] = readings
            self.send(msg)
            return
        for i, reading in enumerate(readings):
            out = msg if i == len(readings) - 1 else clone_msg(msg)
            if out is not msg:
                out["_msgid"] = new_msgid()
            out["payload"] = reading
            out["topic"] = reading["tag"]
            self.send(out)

    def _reading(
        self,
        item: dict[str, Any],
        default_tag: str,
        units: dict[str, Any],
        source: str,
        fallback_time: Any,
        now_ms: float,
    ) -> dict[str, Any]:
        cfg = self.cfg
        if "value" not in item:
            raise NodeFailed(f"reading {item!r} has no value")
        tag = str(item.get("tag") or item.get("name") or default_tag)
        if not tag:
            raise NodeFailed("reading has no tag: set the node's Tag or msg.topic")
        stamp = item.get("timestamp", item.get("sourceTimestamp", item.get("serverTimestamp")))
        if stamp is None:
            stamp = fallback_time
        ms = now_ms if stamp is None else to_epoch_ms(stamp, cfg.timeFormat) + cfg.clockOffset
        quality = item.get("quality", item.get("statusCode"))
        return {
            "tag": tag,
            "value": item["value"],
            "unit": str(item.get("unit") or units.get(tag) or cfg.unit),
            "quality": quality_of(quality, cfg.quality),
            "source": str(item.get("source") or source),
            "timestamp": int(ms) if ms == int(ms) else round(ms, 3),
            "asset": dict(self.asset),
        }
