"""A Channels layer backed by one SQLite file, for running without Redis.

Why not the in-memory layer: it does not cross processes, so a Celery worker's ``group_send``
never reaches the ASGI server. Why not channels-lite: it stores messages through the Django ORM
in the application database, so under SQLite every websocket event would compete with the
application's writes for the single write lock; an alpha release is also a poor base for
something every page depends on. This layer keeps messages in their own WAL-mode file.

Delivery model (mirrors channels_redis):

* Process-specific channels (``<prefix>.specific.<client>!<suffix>``, what consumers get from
  ``new_channel``) are drained by ONE poller task per event loop that moves every row for this
  process into in-memory queues, so a thousand open sockets cost one query per poll, not a
  thousand.
* Normal channels (no ``!``) are polled by ``receive`` itself; a row is claimed with a guarded
  ``DELETE`` so two processes never get the same message.
* Capacity is enforced per channel: ``send`` raises ``ChannelFull``; ``group_send`` drops for
  full members, as the Redis layer does. Messages expire after ``expiry`` seconds and group
  memberships after ``group_expiry`` seconds.

Every SQLite call runs in a worker thread (``asyncio.to_thread``) so a busy lock never stalls
the event loop; each thread keeps its own connection.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS channel_message (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    prefix TEXT NOT NULL,
    expires REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS channel_message_channel ON channel_message (channel, id);
CREATE INDEX IF NOT EXISTS channel_message_prefix ON channel_message (prefix, id);
CREATE INDEX IF NOT EXISTS channel_message_expires ON channel_message (expires);
CREATE TABLE IF NOT EXISTS channel_group (
    group_name TEXT NOT NULL,
    channel TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (group_name, channel)
);
CREATE INDEX IF NOT EXISTS channel_group_expires ON channel_group (expires);
"""

# Rows a local poll moves at once; bounded so one burst cannot hold the lock for long.
_LOCAL_BATCH = 500
# Expired rows are swept at most this often per process.
_CLEANUP_EVERY_SECONDS = 5.0


@dataclass
class _LoopState:
    """Receive-side state of one event loop: local queues and the poller feeding them."""

    queues: dict[str, asyncio.Queue[dict[str, Any]]] = field(default_factory=dict)
    poller: asyncio.Task[None] | None = None


class SQLiteChannelLayer(BaseChannelLayer):  # type: ignore[misc]  # channels ships no type hints
    """Channel layer storing messages and groups in a SQLite file shared by all processes."""

    extensions = ["groups", "flush"]

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: dict[str, int] | None = None,
        polling_interval: float = 0.05,
        prefix: str = "asgi",
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        if path is None:
            from django.conf import settings

            path = Path(settings.VAR_DIR) / "channels.sqlite3"
        self.path = Path(path)
        self.group_expiry = group_expiry
        self.polling_interval = polling_interval
        self.prefix = prefix
        self._local = threading.local()
        self._pid = -1
        self._client_prefix = ""
        self._schema_lock = threading.Lock()
        # Event loops of one process (a server's, a thread's under async_to_sync) share its
        # prefix: their pollers take its rows one at a time and hand each to the loop reading it.
        self._take_lock = threading.Lock()
        self._schema_ready_pid = -1
        self._last_cleanup = 0.0
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    # -- identity -------------------------------------------------------------------------

    @property
    def client_prefix(self) -> str:
        """Unique per process, re-drawn after a fork so children never share a mailbox."""
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self._client_prefix = secrets.token_hex(8)
        return self._client_prefix

    def _local_prefix(self) -> str:
        return f"{self.prefix}.specific.{self.client_prefix}!"

    # -- SQLite plumbing (runs in worker threads) -----------------------------------------

    def _connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and getattr(self._local, "pid", None) == pid:
            return connection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a write transaction
        # takes the lock up front and waits (busy timeout) instead of failing half-way.
        connection = sqlite3.connect(self.path, timeout=15, isolation_level=None)
        connection.execute("PRAGMA synchronous=NORMAL")
        self._setup_file(connection, pid)
        self._local.connection = connection
        self._local.pid = pid
        return connection

    def _setup_file(self, connection: sqlite3.Connection, pid: int) -> None:
        with self._schema_lock:
            if self._schema_ready_pid == pid:
                return
            # Switching to WAL needs an exclusive lock and SQLite answers "locked" at once
            # (no busy wait) when several processes open a new file together: retry briefly.
            # WAL mode persists in the file, so later opens only read it.
            for attempt in range(100):
                try:
                    (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
                    if str(mode).lower() != "wal":
                        connection.execute("PRAGMA journal_mode=WAL")
                    connection.executescript(_SCHEMA)
                    break
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) or attempt == 99:
                        raise
                    time.sleep(0.02 + 0.01 * (attempt % 5))
            self._schema_ready_pid = pid

    def _capacity_left(self, connection: sqlite3.Connection, channel: str, now: float) -> bool:
        (count,) = connection.execute(
            "SELECT COUNT(*) FROM channel_message WHERE channel = ? AND expires > ?",
            (channel, now),
        ).fetchone()
        return bool(count < self.get_capacity(channel))

    def _db_send(self, channel: str, body: bytes) -> None:
        connection = self._connection()
        now = time.time()
        connection.execute("BEGIN IMMEDIATE")
        try:
            if not self._capacity_left(connection, channel, now):
                raise ChannelFull(channel)
            connection.execute(
                "INSERT INTO channel_message (channel, prefix, expires, body) VALUES (?, ?, ?, ?)",
                (channel, self.non_local_name(channel), now + self.expiry, body),
            )
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        self._maybe_cleanup(connection, now)

    def _db_group_send(self, group: str, body: bytes) -> int:
        """Queue ``body`` for every live member; return how many members were full."""
        connection = self._connection()
        now = time.time()
        dropped = 0
        connection.execute("BEGIN IMMEDIATE")
        try:
            members = [
                row[0]
                for row in connection.execute(
                    "SELECT channel FROM channel_group WHERE group_name = ? AND expires > ?",
                    (group, now),
                )
            ]
            for channel in members:
                if not self._capacity_left(connection, channel, now):
                    dropped += 1
                    continue
                connection.execute(
                    "INSERT INTO channel_message (channel, prefix, expires, body) "
                    "VALUES (?, ?, ?, ?)",
                    (channel, self.non_local_name(channel), now + self.expiry, body),
                )
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        self._maybe_cleanup(connection, now)
        return dropped

    def _db_take_one(self, channel: str) -> bytes | None:
        connection = self._connection()
        now = time.time()
        while True:
            # A plain read first: an empty poll must not take the write lock.
            row = connection.execute(
                "SELECT id, body FROM channel_message WHERE channel = ? AND expires > ? "
                "ORDER BY id LIMIT 1",
                (channel, now),
            ).fetchone()
            if row is None:
                return None
            claimed = connection.execute("DELETE FROM channel_message WHERE id = ?", (row[0],))
            if claimed.rowcount == 1:
                body: bytes = row[1]
                return body
            # Another process claimed it between our read and delete: look again.

    def _db_take_local(self, prefix: str) -> list[tuple[str, bytes]]:
        with self._take_lock:
            return self._db_take_local_locked(prefix)

    def _db_take_local_locked(self, prefix: str) -> list[tuple[str, bytes]]:
        connection = self._connection()
        now = time.time()
        rows = connection.execute(
            "SELECT id, channel, body FROM channel_message WHERE prefix = ? AND expires > ? "
            "ORDER BY id LIMIT ?",
            (prefix, now, _LOCAL_BATCH),
        ).fetchall()
        if rows:
            # Only this process reads its own prefix, so read-then-delete cannot race.
            placeholders = ",".join("?" * len(rows))
            connection.execute(
                f"DELETE FROM channel_message WHERE id IN ({placeholders})",  # noqa: S608
                [row[0] for row in rows],
            )
        self._maybe_cleanup(connection, now)
        return [(row[1], row[2]) for row in rows]

    def _maybe_cleanup(self, connection: sqlite3.Connection, now: float) -> None:
        if now - self._last_cleanup < _CLEANUP_EVERY_SECONDS:
            return
        self._last_cleanup = now
        connection.execute("DELETE FROM channel_message WHERE expires <= ?", (now,))
        connection.execute("DELETE FROM channel_group WHERE expires <= ?", (now,))

    def _db_group_add(self, group: str, channel: str) -> None:
        self._connection().execute(
            "INSERT OR REPLACE INTO channel_group (group_name, channel, expires) VALUES (?, ?, ?)",
            (group, channel, time.time() + self.group_expiry),
        )

    def _db_group_discard(self, group: str, channel: str) -> None:
        self._connection().execute(
            "DELETE FROM channel_group WHERE group_name = ? AND channel = ?", (group, channel)
        )

    def _db_flush(self) -> None:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("DELETE FROM channel_message")
        connection.execute("DELETE FROM channel_group")
        connection.execute("COMMIT")

    # -- encoding -------------------------------------------------------------------------

    @staticmethod
    def _encode(message: dict[str, Any]) -> bytes:
        if not isinstance(message, dict):
            raise TypeError("A channel layer message must be a dict.")
        body: bytes = msgpack.packb(message, use_bin_type=True)
        return body

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        message: dict[str, Any] = msgpack.unpackb(body, raw=False)
        return message

    # -- channel layer API ----------------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue ``message`` on ``channel``; raise ``ChannelFull`` at capacity."""
        self.require_valid_channel_name(channel)
        await asyncio.to_thread(self._db_send, channel, self._encode(message))

    async def new_channel(self, prefix: str = "specific.") -> str:
        """Return a fresh process-specific channel name, ready to receive on."""
        name = f"{self._local_prefix()}{secrets.token_hex(12)}"
        self._state().queues.setdefault(name, asyncio.Queue())
        return name

    async def receive(self, channel: str) -> dict[str, Any]:
        """Wait for the next message on ``channel``."""
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            return await self._receive_shared(channel)
        if not channel.startswith(self._local_prefix()):
            raise RuntimeError(f"Channel {channel!r} belongs to another process.")
        state = self._state()
        queue = state.queues.setdefault(channel, asyncio.Queue())
        if state.poller is None or state.poller.done():
            state.poller = asyncio.get_running_loop().create_task(self._poll_local(state))
        try:
            return await queue.get()
        except asyncio.CancelledError:
            # The consumer is gone: stop collecting for it (its later messages are dropped).
            state.queues.pop(channel, None)
            raise

    async def discard_channel(self, channel: str) -> None:
        """Stop collecting for a process-specific channel read for the last time (a reply
        channel used once): its queue goes, and the poller ends once no queue is left.
        channels_redis needs no such call: it drops a receive buffer once it is empty."""
        self._state().queues.pop(channel, None)

    async def _receive_shared(self, channel: str) -> dict[str, Any]:
        while True:
            body = await asyncio.to_thread(self._db_take_one, channel)
            if body is not None:
                return self._decode(body)
            await asyncio.sleep(self.polling_interval)

    async def _poll_local(self, state: _LoopState) -> None:
        prefix = self._local_prefix()
        # Ends by itself once nobody listens, so no task outlives the consumers of its loop.
        while state.queues:
            rows = await asyncio.to_thread(self._db_take_local, prefix)
            for channel, body in rows:
                queue = state.queues.get(channel)
                if queue is not None:
                    queue.put_nowait(self._decode(body))
                else:
                    self._hand_over(channel, self._decode(body))
            if len(rows) < _LOCAL_BATCH:
                await asyncio.sleep(self.polling_interval)

    def _hand_over(self, channel: str, message: dict[str, Any]) -> None:
        """Give a message to the other event loop of this process that reads ``channel``
        (e.g. a reply channel made under ``async_to_sync`` beside the server's loop)."""
        for loop, other in list(self._loops.items()):
            queue = other.queues.get(channel)
            if queue is not None and not loop.is_closed():
                loop.call_soon_threadsafe(queue.put_nowait, message)
                return

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = _LoopState()
            self._loops[loop] = state
        return state

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (membership expires after ``group_expiry``)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await asyncio.to_thread(self._db_group_add, group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; a no-op when it is not a member."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await asyncio.to_thread(self._db_group_discard, group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every member; members at capacity miss it silently."""
        self.require_valid_group_name(group)
        await asyncio.to_thread(self._db_group_send, group, self._encode(message))

    async def flush(self) -> None:
        """Delete every queued message and every group membership."""
        await asyncio.to_thread(self._db_flush)
        for state in list(self._loops.values()):
            for queue in state.queues.values():
                while not queue.empty():
                    queue.get_nowait()

    async def close(self) -> None:
        """Close this thread's connection (other threads' close when they exit)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
