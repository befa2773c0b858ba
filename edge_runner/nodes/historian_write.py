"""``historian-write``: batch timestamped tag values into the SQL historian; for PostgreSQL
every point goes through the runner's outbox (store and forward) while the server is away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import model_validator

from edge_runner.contract import (
    Category,
    Msg,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    register,
)
from edge_runner.historian.base import (
    HistorianError,
    HistorianUnavailableError,
    points_from_payload,
)
from edge_runner.historian.connection import (
    CONNECTION_HELP,
    HistorianConnection,
    historian_root,
    open_backend,
)
from edge_runner.historian.sqlite import decode_point, encode_point, legacy_spool
from edge_runner.lib.backoff import Backoff
from edge_runner.lib.outbox import Outbox, OutboxError

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi
    from edge_runner.historian.base import Point

log = logging.getLogger("edge_runner.historian")
DRAIN_BATCH = 500
MAX_RETRY = 60.0
# Points held in memory between flushes (local SQLite); past it the flusher falls behind.
MEMORY_LIMIT = 50_000
STOP_DRAIN = 5.0  # seconds stop() spends sending what waits before leaving it in the outbox


class Config(HistorianConnection):
    batchSize: int = 100  # noqa: N815
    flushInterval: float = 1.0  # noqa: N815  # seconds
    maxSpool: int = 1_000_000  # noqa: N815  # points kept while PostgreSQL is unreachable
    retryInterval: float = 2.0  # noqa: N815  # first reconnect window (s), doubling to 60

    @model_validator(mode="after")
    def _check(self) -> Config:
        if not 1 <= self.batchSize <= 10_000:
            raise ValueError(f"batchSize must be 1..10000, got {self.batchSize}")
        if not 0.01 <= self.flushInterval <= 3600:
            raise ValueError(f"flushInterval must be 0.01..3600 s, got {self.flushInterval}")
        if self.maxSpool < 1:
            raise ValueError("maxSpool must be at least 1")
        if not 0.05 <= self.retryInterval <= MAX_RETRY:
            raise ValueError(f"retryInterval must be 0.05..60 s, got {self.retryInterval}")
        return self


SPEC = NodeSpec(
    type="historian-write",
    version=1,
    category=Category.STORAGE,
    inputs=1,
    outputs=0,
    label="historian write",
    color="#E6E0F8",
    icon="db.svg",
    credentials=("password",),
    help="""Writes timestamped tag values to a SQL historian.

### Inputs
- **payload**: a reading `{tag, value, timestamp?, unit?, quality?, source?, asset?}` (as
  `tag-context` sends), an array of readings, a `{tag: value}` map, or a bare value tagged
  with `msg.topic`. Timestamps in epoch s/ms, ISO 8601 or OPC-UA form; none means now
  (or `msg.timestamp`). Numbers and booleans go to `value`, strings and objects to
  `text_value`.

"""
    + CONNECTION_HELP
    + """
### Details
Values are written in batches (*Batch size* points, or every *Flush interval*), each batch in
one transaction; a repeated `(tag, time)` is ignored, so a batch resent after a lost
acknowledgement is not duplicated.

**Store and forward** (PostgreSQL): every value first goes to the runner's outbox on disk
(`<data dir>/historian/spool-<node id>.sqlite3`), committed within a few milliseconds, so it
survives a restart and a runner kill; it leaves the outbox once PostgreSQL committed it. While
the server is unreachable the values wait there and the node retries after a random pause of
up to *Retry interval*, that bound doubling up to 60 s (full jitter). On recovery the waiting
values are sent first, in order, then new ones. The outbox holds at most *Max spool* points:
past it the **oldest** are dropped and counted in the status. A batch resent after a kill is
not duplicated (the `(tag, time)` key). With SQLite, values wait in memory for at most one
flush interval; on stop or redeploy they are written.

### Status
green *connected* / red *unreachable · N spooled* / yellow *sending N spooled*.
""",
)


@register
class HistorianWriteNode(Node):
    """Write tag values to SQLite or PostgreSQL, spooling while PostgreSQL is away."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, Config):
            raise TypeError("historian-write needs its own Config")
        self.cfg = config
        self.buffer: list[Point] = []
        self.backend: Any = None
        self.spool: Outbox[Point] | None = None
        self.up = False
        self.written = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._retry = Backoff(config.retryInterval, MAX_RETRY)
        self._behind = False  # sending what waited through an outage

    async def start(self) -> None:
        cfg = self.cfg
        self.backend = open_backend(cfg, self.rt, self.rt.credentials.get("password"))
        self._wake = asyncio.Event()
        if cfg.backend == "sqlite":
            try:
                await self.backend.connect()
            except HistorianError as exc:
                raise NeedsUserFix(str(exc)) from None
            self.up = True
            self.status("green", "dot", "ready")
        else:
            spool = Outbox(
                historian_root(self.rt) / f"spool-{self.id}.sqlite3",
                cfg.maxSpool,
                encode_point,
                decode_point,
                legacy=legacy_spool,
            )
            try:
                self.spool = await spool.open()
            except OutboxError as exc:
                raise NeedsUserFix(f"spool: {exc}") from None
            self._behind = bool(self.spool.count)
            await self._reconnect()
        self._task = asyncio.get_running_loop().create_task(self._flusher())

    def on_message(self, msg: Msg) -> None:
        try:
            points = points_from_payload(
                msg.get("payload"), str(msg.get("topic") or ""), msg.get("timestamp")
            )
        except HistorianError as exc:
            raise NodeFailed(str(exc)) from None
        spool = self.spool
        if spool is not None:
            for point in points:
                spool.put(point)
            if not self.up:
                self._show()
            elif spool.count >= self.cfg.batchSize and self._wake is not None:
                self._wake.set()
            return
        self.buffer.extend(points)
        if len(self.buffer) >= self.cfg.batchSize and self._wake is not None:
            self._wake.set()
        if len(self.buffer) > MEMORY_LIMIT:
            self.warn(f"historian buffer above {MEMORY_LIMIT} points; writing falls behind")

    # ------------------------------------------------------------------ background work
    async def _flusher(self) -> None:
        assert self._wake is not None  # noqa: S101  # set in start()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.cfg.flushInterval)
            self._wake.clear()
            try:
                await self._flush_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the flusher die: report and carry on
                log.exception("historian flush failed")
                self.error(f"historian flush failed: {exc}")

    async def _flush_once(self) -> None:
        if self.spool is None:  # local SQLite: no outage to ride out
            while self.buffer:
                batch, self.buffer = (
                    self.buffer[: self.cfg.batchSize],
                    self.buffer[self.cfg.batchSize :],
                )
                await self._write_local(batch)
            return
        if not self.up and time.monotonic() >= self._retry_at:
            await self._reconnect()
        if self.up and self.spool.count:
            await self._drain()

    async def _write_local(self, batch: list[Point]) -> None:
        try:
            await self.backend.write(batch)
            self.written += len(batch)
        except HistorianError as exc:
            self.error(f"historian write failed ({len(batch)} points lost): {exc}")

    async def _drain(self) -> None:
        """Send the outbox oldest first; each batch leaves it once PostgreSQL committed it."""
        spool = self.spool
        assert spool is not None  # noqa: S101  # only called for PostgreSQL
        size = max(self.cfg.batchSize, DRAIN_BATCH)
        while spool.count and self.up:
            rows = await spool.peek_batch(size)
            if not rows:  # the newest points are a few ms from durable
                await spool.flush()
                rows = await spool.peek_batch(size)
                if not rows:
                    break
            if self._behind:
                self.status("yellow", "dot", f"sending {spool.count} spooled")
            try:
                await self.backend.write([point for _, point in rows])
            except HistorianUnavailableError as exc:
                self._went_down(str(exc))
                return
            except HistorianError as exc:
                # a batch the server refuses would block the outbox forever: report, drop it
                self.error(f"historian rejected {len(rows)} points, dropped: {exc}")
            else:
                self.written += len(rows)
            spool.ack(item_id for item_id, _ in rows)
        self._behind = self._behind and bool(spool.count)
        self._show()

    async def _reconnect(self) -> None:
        try:
            await self.backend.connect()
        except HistorianError as exc:
            self._went_down(str(exc))
            return
        if not self.up:
            self.up = True
            self._retry.reset()
            log.info("[historian-write %s] PostgreSQL reachable", self.id)
        self._show()

    def _went_down(self, reason: str) -> None:
        if self.up or self._retry_at == 0.0:
            self.warn(f"historian unreachable, spooling: {reason}")  # once per outage
        self.up = False
        self._behind = True
        self._retry_at = time.monotonic() + self._retry.next_delay()
        self._show()

    def _show(self) -> None:
        spool = self.spool
        dropped = f" · {spool.dropped} dropped" if spool is not None and spool.dropped else ""
        if not self.up:
            size = spool.count if spool is not None else 0
            self.status("red", "ring", f"unreachable · {size} spooled{dropped}")
        elif spool is not None and spool.count and self._behind:
            self.status("yellow", "dot", f"sending {spool.count} spooled{dropped}")
        else:
            self.status("green", "dot", f"connected{dropped}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # the flusher reports its own errors; here it only has to be gone
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.backend is not None:
            try:
                if self.buffer:
                    await self._write_local(self.buffer)
                    self.buffer = []
                if self.spool is not None and self.up and self.spool.count:
                    # whatever is not sent in time stays in the outbox for the next start
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(STOP_DRAIN):
                            await self._drain()
            finally:
                await self.backend.close()
                if self.spool is not None:
                    await self.spool.close()
        self.backend = None
