"""``historian-query``: read a window of recent values of one tag from the SQL historian."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import model_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeFailed, NodeSpec, register
from edge_runner.historian.base import (
    AGGREGATES,
    MAX_ROWS,
    Aggregate,
    HistorianError,
    HistorianUnavailableError,
    QueryWindow,
    aggregate,
)
from edge_runner.historian.connection import CONNECTION_HELP, HistorianConnection, open_backend

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi


class Config(HistorianConnection):
    tag: str = ""  # "" = msg.topic
    last: float = 60.0  # seconds back from now, unless msg.payload gives from/to
    aggregate: Aggregate = ""
    bucket: float = 0  # seconds per aggregate bucket; 0 = one value for the whole window
    limit: int = 10_000

    @model_validator(mode="after")
    def _check(self) -> Config:
        if not self.last > 0:
            raise ValueError(f"last must be a positive number of seconds, got {self.last}")
        if self.bucket < 0:
            raise ValueError("bucket must not be negative")
        if not 1 <= self.limit <= MAX_ROWS:
            raise ValueError(f"limit must be 1..{MAX_ROWS}, got {self.limit}")
        return self


SPEC = NodeSpec(
    type="historian-query",
    version=1,
    category=Category.STORAGE,
    inputs=1,
    outputs=1,
    label="historian query",
    color="#E6E0F8",
    icon="db.svg",
    credentials=("password",),
    help="""Reads a window of recent values of one tag from the SQL historian.

### Inputs
- **payload** *object, optional*: overrides for this query: `tag`, `from` / `to` (epoch ms,
  epoch s or ISO 8601), `last` (seconds back from now), `aggregate`, `bucket` (seconds).
- **topic** *string*: the tag when neither the node nor the payload names one.

### Outputs
- **payload**: without aggregate, the rows `[{tag, timestamp, value, quality, unit}]` oldest
  first (at most *Limit*); with an aggregate (`avg`, `min`, `max`, `sum`, `count`, `first`,
  `last`) one value, or `[{timestamp, value}]` per *Bucket* seconds.
- **query** *object*: the window that was read `{tag, from, to, aggregate, bucket}`.

"""
    + CONNECTION_HELP
    + """
### Details
An unreachable database is an error for that message (routed to `catch` nodes, status red);
the next message tries again.
""",
)


@register
class HistorianQueryNode(Node):
    """Read recent values of a tag (optionally aggregated) from the historian."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, Config):
            raise TypeError("historian-query needs its own Config")
        self.cfg = config
        self.backend: Any = None

    async def start(self) -> None:
        self.backend = open_backend(self.cfg, self.rt, self.rt.credentials.get("password"))

    def _window(self, msg: Msg) -> QueryWindow:
        from edge_runner.lib.timestamps import to_epoch_ms

        cfg = self.cfg
        extra = msg.get("payload")
        extra = extra if isinstance(extra, dict) else {}
        tag = str(extra.get("tag") or cfg.tag or msg.get("topic") or "")
        if not tag:
            raise NodeFailed("no tag: set the node's Tag, msg.payload.tag or msg.topic")
        now = time.time() * 1000.0
        end = to_epoch_ms(extra["to"]) if extra.get("to") is not None else now
        if extra.get("from") is not None:
            start = to_epoch_ms(extra["from"])
        else:
            last = extra.get("last", cfg.last)
            if (
                isinstance(last, bool)
                or not isinstance(last, (int, float))
                or not (last > 0 and math.isfinite(last))
            ):
                raise NodeFailed(f"last must be a positive number of seconds, got {last!r}")
            start = end - last * 1000.0
        if start > end:
            raise NodeFailed("the window starts after it ends (from > to)")
        kind: Aggregate = extra.get("aggregate", cfg.aggregate) or ""
        if kind not in AGGREGATES:
            raise NodeFailed(f"aggregate {kind!r} is not one of {', '.join(AGGREGATES[1:])}")
        bucket = extra.get("bucket", cfg.bucket) or 0
        if isinstance(bucket, bool) or not isinstance(bucket, (int, float)) or bucket < 0:
            raise NodeFailed(f"bucket must be a number of seconds, got {bucket!r}")
        return QueryWindow(
            tag, math.floor(start), math.ceil(end), kind, int(bucket * 1000), cfg.limit
        )

    async def on_message(self, msg: Msg) -> None:
        window = self._window(msg)
        try:
            points = await self.backend.rows(window)
        except HistorianUnavailableError as exc:
            self.status("red", "ring", "unreachable")
            raise NodeFailed(str(exc)) from None
        except HistorianError as exc:
            raise NodeFailed(str(exc)) from None
        self.status("green", "dot", f"{len(points)} rows")
        msg["payload"] = (
            aggregate(points, window) if window.aggregate else [p.as_row() for p in points]
        )
        msg["query"] = {
            "tag": window.tag,
            "from": window.start,
            "to": window.end,
            "aggregate": window.aggregate,
            "bucket": window.bucket / 1000,
        }
        self.send(msg)

    async def stop(self) -> None:
        if self.backend is not None:
            await self.backend.close()
            self.backend = None
