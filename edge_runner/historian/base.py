"""Points, query windows, the backend interface and aggregation shared by both backends."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

AGGREGATES = ("", "avg", "min", "max", "sum", "count", "first", "last")
Aggregate = Literal["", "avg", "min", "max", "sum", "count", "first", "last"]
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Largest number of rows one query returns (a window of recent values, not an export).
MAX_ROWS = 100_000


class HistorianError(Exception):
    """A write or query the historian refused (bad data, bad schema): not retried."""


class HistorianUnavailableError(HistorianError):
    """The database cannot be reached now: retried later (store and forward)."""


def check_table(name: str) -> str:
    if not _TABLE.match(name):
        raise ValueError(
            f"table name {name!r} must be a letter or _ then up to 62 letters, digits or _"
        )
    return name


@dataclass(frozen=True)
class Point:
    """One tag value at one instant (``ts``: ms since the Unix epoch, UTC)."""

    tag: str
    ts: int
    value: float | None = None
    text: str | None = None  # non-numeric values (strings, JSON of objects)
    quality: str = "good"
    unit: str = ""
    source: str = ""
    site: str = ""
    line: str = ""
    machine: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Point:
        return cls(**json.loads(text))

    def as_row(self) -> dict[str, Any]:
        value: Any = self.value if self.text is None else self.text
        return {
            "tag": self.tag,
            "timestamp": self.ts,
            "value": value,
            "quality": self.quality,
            "unit": self.unit,
        }


@dataclass(frozen=True)
class QueryWindow:
    tag: str
    start: int  # ms, inclusive
    end: int  # ms, inclusive
    aggregate: Aggregate = ""
    bucket: int = 0  # ms per aggregate bucket; 0 = the whole window
    limit: int = 10_000


class Backend(Protocol):
    async def connect(self) -> None: ...

    async def write(self, points: list[Point]) -> None: ...

    async def rows(self, window: QueryWindow) -> list[Point]: ...

    async def close(self) -> None: ...


def _number(value: Any) -> tuple[float | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool):
        return (1.0 if value else 0.0), None
    if isinstance(value, (int, float)):
        number = float(value)
        return (number, None) if math.isfinite(number) else (None, str(value))
    if isinstance(value, str):
        return None, value
    try:
        return None, json.dumps(value, separators=(",", ":"), default=str)
    except (TypeError, ValueError) as exc:
        raise HistorianError(f"value {value!r} cannot be stored: {exc}") from None


def point_from(item: dict[str, Any], default_ts: float, default_tag: str = "") -> Point:
    """A Point from a tag-context reading (or any dict with ``tag``/``value``)."""
    from edge_runner.contract import NodeFailed
    from edge_runner.lib.timestamps import to_epoch_ms

    tag = str(item.get("tag") or default_tag)
    if not tag:
        raise HistorianError(f"reading {item!r} has no tag")
    if len(tag) > 200:
        raise HistorianError(f"tag {tag[:40]!r}… is longer than 200 characters")
    if "value" not in item:
        raise HistorianError(f"reading for tag {tag!r} has no value")
    stamp = item.get("timestamp")
    try:
        ts = default_ts if stamp is None else to_epoch_ms(stamp)
    except NodeFailed as exc:
        raise HistorianError(str(exc)) from None
    value, text = _number(item["value"])
    found = item.get("asset")
    asset: dict[str, Any] = found if isinstance(found, dict) else {}
    return Point(
        tag=tag,
        ts=round(ts),
        value=value,
        text=text,
        quality=str(item.get("quality") or "good"),
        unit=str(item.get("unit") or ""),
        source=str(item.get("source") or ""),
        site=str(asset.get("site") or ""),
        line=str(asset.get("line") or ""),
        machine=str(asset.get("machine") or ""),
    )


def points_from_payload(payload: Any, topic: str = "", timestamp: Any = None) -> list[Point]:
    """Readings (one, a list), a ``{tag: value}`` map, or a bare value tagged with ``topic``."""
    from edge_runner.contract import NodeFailed
    from edge_runner.lib.timestamps import to_epoch_ms

    try:
        now = to_epoch_ms(timestamp) if timestamp is not None else time.time() * 1000.0
    except NodeFailed as exc:
        raise HistorianError(str(exc)) from None
    items = payload if isinstance(payload, list) else [payload]
    points: list[Point] = []
    for item in items:
        if isinstance(item, dict) and "value" not in item:
            if not item:
                raise HistorianError("the reading map is empty")
            points.extend(point_from({"tag": k, "value": v}, now) for k, v in item.items())
        elif isinstance(item, dict):
            points.append(point_from(item, now, topic))
        else:
            points.append(point_from({"value": item}, now, topic))
    return points


def aggregate(points: list[Point], window: QueryWindow) -> list[dict[str, Any]] | Any:
    """Reduce rows (sorted by time) to one value, or one ``{timestamp, value}`` per bucket."""
    kind = window.aggregate
    if window.bucket <= 0:
        return _reduce(points, kind)
    buckets: dict[int, list[Point]] = {}
    for point in points:
        start = window.start + (point.ts - window.start) // window.bucket * window.bucket
        buckets.setdefault(start, []).append(point)
    return [
        {"timestamp": start, "value": _reduce(group, kind)}
        for start, group in sorted(buckets.items())
    ]


def _reduce(points: list[Point], kind: str) -> Any:
    if kind == "count":
        return len(points)
    if kind in ("first", "last"):
        if not points:
            return None
        chosen = points[0] if kind == "first" else points[-1]
        return chosen.value if chosen.text is None else chosen.text
    values = [p.value for p in points if p.value is not None]
    if not values:
        return None
    if kind == "avg":
        return math.fsum(values) / len(values)
    if kind == "min":
        return min(values)
    if kind == "max":
        return max(values)
    return math.fsum(values)
