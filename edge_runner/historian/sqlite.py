"""Local SQLite historian (WAL) on stdlib sqlite3, and the form of the points the
store-and-forward for PostgreSQL keeps in the runner's outbox.

sqlite3 calls run in a worker thread (``asyncio.to_thread``) so a slow disk never stalls the
event loop; one connection per object, guarded by a lock."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from edge_runner.historian.base import MAX_ROWS, HistorianError, Point, QueryWindow, check_table

T = TypeVar("T")
COLUMNS = ("tag", "ts", "value", "text", "quality", "unit", "source", "site", "line", "machine")


class _Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=10, check_same_thread=False, isolation_level=None
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with self._lock:
                try:
                    return fn(self._open())
                except sqlite3.Error as exc:
                    raise HistorianError(f"{self.path.name}: {exc}") from None

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        def run() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(run)


class SQLiteHistorian(_Database):
    """``points`` in one SQLite file; (tag, ts) is the key, a repeated point is ignored."""

    def __init__(self, path: Path, table: str = "historian") -> None:
        super().__init__(path)
        self.table = check_table(table)

    async def connect(self) -> None:
        table = self.table

        def create(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (tag TEXT NOT NULL, ts INTEGER NOT NULL, "
                "value REAL, text TEXT, quality TEXT NOT NULL, unit TEXT NOT NULL, "
                "source TEXT NOT NULL, site TEXT NOT NULL, line TEXT NOT NULL, "
                "machine TEXT NOT NULL, PRIMARY KEY (tag, ts)) WITHOUT ROWID"
            )

        await self.call(create)

    async def write(self, points: list[Point]) -> None:
        rows = [tuple(getattr(p, c) for c in COLUMNS) for p in points]
        sql = (
            f"INSERT OR IGNORE INTO {self.table} ({', '.join(COLUMNS)}) "  # noqa: S608  # validated identifier
            f"VALUES ({', '.join('?' * len(COLUMNS))})"
        )

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN")
            try:
                conn.executemany(sql, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self.call(insert)

    async def rows(self, window: QueryWindow) -> list[Point]:
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM {self.table} "  # noqa: S608  # validated identifier
            "WHERE tag = ? AND ts >= ? AND ts <= ? ORDER BY ts LIMIT ?"
        )
        args = (window.tag, window.start, window.end, min(window.limit, MAX_ROWS))

        def select(conn: sqlite3.Connection) -> list[Point]:
            return [Point(*row) for row in conn.execute(sql, args)]

        return await self.call(select)


def encode_point(point: Point) -> bytes:
    """A point as the historian keeps it in the runner's outbox: a JSON array of the fields in
    ``COLUMNS`` order (positional: ``dataclasses.asdict`` costs 20 times more per point)."""
    return json.dumps(
        (
            point.tag,
            point.ts,
            point.value,
            point.text,
            point.quality,
            point.unit,
            point.source,
            point.site,
            point.line,
            point.machine,
        ),
        separators=(",", ":"),
    ).encode()


def decode_point(body: bytes) -> Point:
    return Point(*json.loads(body))


def legacy_spool(db: sqlite3.Connection) -> list[bytes]:
    """For ``Outbox(legacy=...)``: the points a runner older than the outbox left in its
    ``spool`` table (same file), in outbox form; the table is dropped."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='spool'").fetchone():
        return []
    rows = db.execute("SELECT point FROM spool ORDER BY seq")
    bodies = [encode_point(Point.from_json(text)) for (text,) in rows]
    db.execute("DROP TABLE spool")
    return bodies


def sqlite_path(root: Path, name: Any) -> Path:
    """``name`` inside ``root`` (the runner's data directory); nothing outside it."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("the SQLite file name is empty")
    candidate = (root / name).resolve()
    if candidate != root and root.resolve() not in candidate.parents:
        raise ValueError(f"SQLite file {name!r} is outside the data directory")
    return candidate
