"""The runner's one outbox: an ordered, durable, bounded queue of everything that must survive an
outage (MQTT messages waiting for a broker, historian points waiting for PostgreSQL).

The hot path never touches the disk: ``put()`` encodes the item, appends it in memory and wakes
a writer task; the writer commits whatever accumulated since its last commit as ONE SQLite
transaction on a dedicated thread, so the event loop never waits for the disk and the batches
grow by themselves under load.

Durability point: an item is durable once the batch holding it has committed (normally a few
ms after ``put()``; ``await flush()`` waits for it, ``durable_id`` is the highest committed
id). The file is SQLite in WAL mode with ``synchronous=NORMAL``: a committed item survives the
runner being killed (SIGKILL, OOM); an OS crash or power cut may lose the last commits.

Delivery: ``peek_batch()`` hands out only durable items, oldest first, so nothing is ever sent
that a crash could forget. The consumer calls ``ack(ids)`` once the peer has the items; acks
are written with the next batch. An item acknowledged but not yet deleted on disk when the
runner is killed comes back after the restart: delivery is **at least once** (a duplicate is
possible after a kill, a loss of a durable item is not).

Bound: at most ``limit`` items. Past it the **oldest** item is dropped and counted in
``dropped`` (kept in the file across restarts), so the newest data and the device's disk
survive a long outage.

Memory: the newest ``MEMORY_ITEMS`` items are also kept decoded in memory (the consumer reads
them back without the disk); older ones are read from the file when their turn comes. The ids
of all waiting items are kept in memory (8 bytes each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from edge_runner.lib.backoff import Backoff

log = logging.getLogger("edge_runner.outbox")

T = TypeVar("T")
R = TypeVar("R")
MEMORY_ITEMS = 10_000
# Items per commit at most, so one transaction (and the WAL it grows) stays small while a large
# burst is written.
BATCH_ITEMS = 2000
CLOSE_TIMEOUT = 10.0  # seconds close() waits for the last commit before giving up on it
RETRY_BASE, RETRY_CAP = 0.05, 5.0  # seconds between attempts while the disk refuses writes


class OutboxError(Exception):
    """The outbox file cannot be opened or used (corrupt, unwritable, closed)."""


class _Ids:
    """The ids of waiting items, ascending: an int64 array with a moving head (O(1) append and
    pop of the oldest, O(log n) lookup)."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._ids = array("q", ids)
        self._head = 0

    def __len__(self) -> int:
        return len(self._ids) - self._head

    def append(self, item_id: int) -> None:
        self._ids.append(item_id)

    def first(self) -> int:
        return self._ids[self._head]

    def popleft(self) -> int:
        item_id = self._ids[self._head]
        self._head += 1
        self._compact()
        return item_id

    def head(self, count: int) -> list[int]:
        return self._ids[self._head : self._head + count].tolist()

    def __contains__(self, item_id: int) -> bool:
        pos = bisect_left(self._ids, item_id, self._head)
        return pos < len(self._ids) and self._ids[pos] == item_id

    def remove(self, item_id: int) -> bool:
        pos = bisect_left(self._ids, item_id, self._head)
        if pos >= len(self._ids) or self._ids[pos] != item_id:
            return False
        if pos == self._head:
            self._head += 1
            self._compact()
        else:
            del self._ids[pos]
        return True

    def _compact(self) -> None:
        if self._head > 4096 and self._head * 2 > len(self._ids):
            del self._ids[: self._head]
            self._head = 0


@dataclass
class _Batch:
    inserts: list[tuple[int, bytes]] = field(default_factory=list)
    deletes: list[int] = field(default_factory=list)
    meta: tuple[int, int] | None = None  # (next id, dropped) to record
    upto: int | None = None  # the change count it completes, when nothing was left behind

    def __bool__(self) -> bool:
        return bool(self.inserts or self.deletes or self.meta)


class Outbox(Generic[T]):
    """A durable FIFO of ``T`` in the SQLite file ``path`` (see the module docstring).

    ``encode``/``decode`` turn an item into bytes and back; ``encode`` runs in ``put()`` so an
    item that cannot be stored is refused to the caller there and then. ``legacy`` imports
    what an older queue left in the same file: it runs in ``open()``'s transaction, returns the
    bodies oldest first and drops its own table."""

    def __init__(
        self,
        path: Path,
        limit: int,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
        legacy: Callable[[sqlite3.Connection], list[bytes]] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("the outbox limit must be at least 1")
        self.path = path
        self.limit = limit
        self.dropped = 0
        self._encode = encode
        self._decode = decode
        self._legacy = legacy
        self._ids = _Ids()
        self._cache: OrderedDict[int, T] = OrderedDict()
        self._staged: OrderedDict[int, bytes] = OrderedDict()
        self._deletes: list[int] = []
        self._meta_dirty = False
        self._next_id = 1
        self._committed_id = 0
        self._changes = 0  # puts, acks and drops so far
        self._synced = 0  # of those, how many are committed
        self._closing = False
        self._closed = False
        self._db: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._writer: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self._changed = asyncio.Condition()
        self._backoff = Backoff(RETRY_BASE, RETRY_CAP)

    # ------------------------------------------------------------------ state
    @property
    def count(self) -> int:
        """Items waiting (put, neither acknowledged nor dropped)."""
        return len(self._ids)

    @property
    def durable_id(self) -> int:
        """The highest id whose batch has committed."""
        return self._committed_id

    def _ready(self) -> bool:
        return bool(self._ids) and self._ids.first() <= self._committed_id

    def _pending(self) -> bool:
        return bool(self._staged or self._deletes or self._meta_dirty)

    # ------------------------------------------------------------------ open and close
    async def open(self) -> Outbox[T]:
        """Open (or create) the file and load the ids of the waiting items."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"outbox {self.path.name}")
        try:
            ids, next_id, dropped = await self._in_thread(self._load)
        except (sqlite3.Error, OSError) as exc:
            await self._shutdown()
            raise OutboxError(f"outbox file {self.path} is unusable: {exc}") from exc
        self._ids = _Ids(ids)
        self._next_id = max(next_id, ids[-1] + 1 if ids else 1)
        self._committed_id = self._next_id - 1
        self.dropped = dropped
        while len(self._ids) > self.limit:  # the limit was lowered since the last run
            self._drop_oldest()
        self._writer = asyncio.get_running_loop().create_task(
            self._write_loop(), name=f"outbox {self.path.name}"
        )
        if self._pending():
            self._dirty.set()
        return self

    def _load(self) -> tuple[array[int], int, int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db = db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS outbox_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )
        if self._legacy is not None:
            db.execute("BEGIN IMMEDIATE")
            try:
                bodies = self._legacy(db)
                first = db.execute("SELECT coalesce(max(id), 0) + 1 FROM outbox").fetchone()[0]
                db.executemany(
                    "INSERT INTO outbox (id, body) VALUES (?, ?)",
                    ((first + n, body) for n, body in enumerate(bodies)),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        ids = array("q", (row[0] for row in db.execute("SELECT id FROM outbox ORDER BY id")))
        meta = dict(db.execute("SELECT key, value FROM outbox_meta").fetchall())
        return ids, int(meta.get("next_id", 1)), int(meta.get("dropped", 0))

    async def close(self) -> None:
        """Commit what is pending (waiting up to ``CLOSE_TIMEOUT``), then close the file.
        Idempotent; ``put()`` fails afterwards."""
        if self._closed:
            return
        self._closed = self._closing = True
        writer, self._writer = self._writer, None
        if writer is not None:
            self._dirty.set()
            try:
                await asyncio.wait_for(writer, CLOSE_TIMEOUT)
            except TimeoutError:
                log.error("outbox %s: the disk did not take the last batch in time", self.path)
        if self._pending():
            log.error("outbox %s: %d items not written before close", self.path, len(self._staged))
        await self._shutdown()

    async def _shutdown(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        with contextlib.suppress(sqlite3.Error):
            await asyncio.get_running_loop().run_in_executor(executor, self._close_db)
        executor.shutdown(wait=False)

    def _close_db(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    async def _in_thread(self, fn: Callable[..., R], *args: object) -> R:
        if self._executor is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ------------------------------------------------------------------ producing
    def put(self, item: T) -> int:
        """Queue ``item`` and return its id; never blocks. Raises ``OutboxError`` once closed
        and whatever ``encode`` raises for an item that cannot be stored."""
        if self._closing:
            raise OutboxError(f"outbox {self.path} is closed")
        body = self._encode(item)
        item_id = self._next_id
        self._next_id += 1
        self._ids.append(item_id)
        self._cache[item_id] = item
        self._staged[item_id] = body
        self._meta_dirty = True
        self._changes += 1
        while len(self._ids) > self.limit:
            self._drop_oldest()
        while len(self._cache) > MEMORY_ITEMS:
            self._cache.popitem(last=False)
        self._dirty.set()
        return item_id

    def _drop_oldest(self) -> None:
        self._forget(self._ids.popleft())
        self.dropped += 1
        self._meta_dirty = True

    def _forget(self, item_id: int) -> None:
        self._cache.pop(item_id, None)
        if self._staged.pop(item_id, None) is None:  # already handed to the writer
            self._deletes.append(item_id)
        self._changes += 1
        self._dirty.set()

    # ------------------------------------------------------------------ consuming
    async def wait_ready(self) -> None:
        """Return once at least one durable item waits."""
        async with self._changed:
            await self._changed.wait_for(self._ready)

    async def peek_batch(self, count: int) -> list[tuple[int, T]]:
        """The oldest (up to ``count``) durable items with their ids, without removing them;
        empty when none is durable yet."""
        ids: list[int] = []
        for item_id in self._ids.head(count):
            if item_id > self._committed_id:
                break
            ids.append(item_id)
        missing = [item_id for item_id in ids if item_id not in self._cache]
        bodies: dict[int, bytes] = {}
        if missing:
            bodies = await self._in_thread(self._select, missing[0], missing[-1])
        out: list[tuple[int, T]] = []
        for item_id in ids:
            cached = self._cache.get(item_id)
            if cached is not None:
                out.append((item_id, cached))
            elif item_id in bodies and item_id in self._ids:  # not acked/dropped meanwhile
                try:
                    out.append((item_id, self._decode(bodies[item_id])))
                except Exception:  # a damaged row must not block the queue behind it
                    log.exception("outbox %s: item %d cannot be read, dropped", self.path, item_id)
                    self.ack([item_id])
        return out

    def _select(self, first: int, last: int) -> dict[int, bytes]:
        assert self._db is not None  # noqa: S101  # open() ran
        rows = self._db.execute(
            "SELECT id, body FROM outbox WHERE id BETWEEN ? AND ?", (first, last)
        )
        return {int(item_id): bytes(body) for item_id, body in rows}

    def ack(self, ids: Iterable[int]) -> None:
        """The peer has these items: remove them (on disk with the next batch)."""
        for item_id in ids:
            if self._ids.remove(item_id):
                self._forget(item_id)

    async def flush(self) -> None:
        """Wait until everything put and acknowledged so far is committed."""
        target = self._changes
        async with self._changed:
            await self._changed.wait_for(lambda: self._synced >= target or self._closed)

    # ------------------------------------------------------------------ the writer
    def _take(self) -> _Batch:
        staged = self._staged
        if len(staged) <= BATCH_ITEMS:
            inserts, self._staged = list(staged.items()), OrderedDict()
        else:
            inserts = [staged.popitem(last=False) for _ in range(BATCH_ITEMS)]
            self._dirty.set()  # the rest goes with the next batch
        batch = _Batch(
            inserts=inserts,
            deletes=self._deletes,
            meta=(inserts[-1][0] + 1 if inserts else self._next_id, self.dropped)
            if self._meta_dirty
            else None,
        )
        self._deletes = []
        self._meta_dirty = bool(self._staged)
        batch.upto = None if self._staged else self._changes
        return batch

    def _restore(self, batch: _Batch) -> None:
        """Put a batch that failed back in front of what arrived since."""
        staged = OrderedDict(
            (item_id, body) for item_id, body in batch.inserts if item_id in self._ids
        )
        staged.update(self._staged)
        self._staged = staged
        self._deletes = [d for d in batch.deletes + self._deletes if d not in staged]
        self._meta_dirty = self._meta_dirty or batch.meta is not None

    async def _write_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            batch = self._take()
            try:
                if batch:
                    await self._in_thread(self._commit, batch)
            except (sqlite3.Error, OSError) as exc:
                self._restore(batch)
                if self._closing:
                    log.error("outbox %s: last write failed: %s", self.path, exc)
                    return
                # once per outage, like the connections; each retry only at debug level
                level = logging.DEBUG if self._backoff.attempt else logging.WARNING
                delay = self._backoff.next_delay()
                log.log(level, "outbox %s: write failed, retrying: %s", self.path, exc)
                await asyncio.sleep(delay)
                self._dirty.set()
                continue
            if self._backoff.attempt:
                log.info("outbox %s: writing again", self.path)
            self._backoff.reset()
            if batch.inserts:
                self._committed_id = batch.inserts[-1][0]
            if batch.upto is not None:
                self._synced = batch.upto
            async with self._changed:
                self._changed.notify_all()
            if self._closing and not self._pending():
                return

    def _commit(self, batch: _Batch) -> None:
        db = self._db
        assert db is not None  # noqa: S101  # open() ran
        db.execute("BEGIN IMMEDIATE")
        try:
            if batch.inserts:
                db.executemany("INSERT INTO outbox (id, body) VALUES (?, ?)", batch.inserts)
            if batch.deletes:
                db.executemany("DELETE FROM outbox WHERE id = ?", ((d,) for d in batch.deletes))
            if batch.meta is not None:
                db.executemany(
                    "INSERT INTO outbox_meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (("next_id", batch.meta[0]), ("dropped", batch.meta[1])),
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
