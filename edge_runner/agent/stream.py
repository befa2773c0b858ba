"""The live stream's ring buffer: debug messages, node status changes and log lines.

Items are numbered by ``seq`` (1, 2, ...) within an ``epoch``, a random id per agent start.
The buffer keeps the last ``STREAM_BUFFER`` items; a watcher that asks for items ``since`` a seq
the buffer no longer holds gets what is left plus an ``overflow`` marker
``{first_seq, last_seq}`` naming exactly what is gone, so a gap is never silent
(docs/device-protocol.md, "Live stream"; RELIABILITY.md family 14).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from edge_runner.protocol import link

# An item's encoded size is capped (a debug message of a large payload is cut, like Node-RED's
# debugMaxLength), so a frame of MAX_STREAM_ITEMS items stays well under MAX_FRAME_BYTES.
MAX_ITEM_BYTES = 8 * 1024
MAX_BATCH_BYTES = link.MAX_FRAME_BYTES // 2

Item = dict[str, Any]


def _cut(item: Item) -> Item:
    text = json.dumps(item, separators=(",", ":"), ensure_ascii=False, default=str)
    if len(text.encode()) <= MAX_ITEM_BYTES:
        return item
    kept: Item = {k: item[k] for k in ("seq", "kind", "time", "node", "level") if k in item}
    kept["truncated"] = True
    kept["message"] = text[: MAX_ITEM_BYTES // 2]
    return kept


class StreamBuffer:
    """A ring buffer of stream items with seq numbers, replay and overflow markers."""

    def __init__(
        self,
        capacity: int = link.STREAM_BUFFER,
        *,
        epoch: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if capacity < 1:
            raise ValueError("the stream buffer holds at least one item")
        self.capacity = capacity
        self.epoch = epoch or secrets.token_hex(8)
        self._items: collections.deque[Item] = collections.deque(maxlen=capacity)
        self._clock = clock
        self.last_seq = 0
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ writing
    def add(self, kind: str, **fields: Any) -> int:
        """Append one item (``kind`` debug, status or log); answers its seq."""
        self.last_seq += 1
        item: Item = {"seq": self.last_seq, "kind": kind, "time": self._clock(), **fields}
        self._items.append(_cut(item))
        self._changed.set()
        return self.last_seq

    def feed_comms(self, topic: str, data: Any) -> None:
        """One event of the engine's /comms (``EngineClient.subscribe``): ``debug`` and
        ``status/<id>`` become stream items."""
        if topic == "debug" and isinstance(data, Mapping):
            node = data.get("id")
            self.add("debug", node=node, **{k: v for k, v in data.items() if k != "id"})
        elif topic.startswith("status/"):
            node = topic.removeprefix("status/")
            status = dict(data) if isinstance(data, Mapping) else {}
            self.add("status", node=node, status=status)

    # ------------------------------------------------------------------ reading
    @property
    def first_seq(self) -> int:
        """The oldest seq still held (``last_seq + 1`` when empty)."""
        return self._items[0]["seq"] if self._items else self.last_seq + 1

    def since(self, seq: int | None) -> tuple[list[Item], dict[str, int] | None]:
        """Items after ``seq`` and the overflow marker of those no longer held.

        ``None`` asks for nothing old (live from now). A seq above ``last_seq`` came from an
        earlier epoch (the agent restarted): everything held is replayed and everything before
        it marked missing."""
        if seq is None:
            return [], None
        if seq > self.last_seq or seq < 0:
            seq = 0
        first = self.first_seq
        overflow = None
        if seq + 1 < first:
            overflow = {"first_seq": seq + 1, "last_seq": first - 1}
        items = [item for item in self._items if item["seq"] > seq]
        return items, overflow

    def batches(self, seq: int | None) -> Iterator[dict[str, Any]]:
        """``stream`` messages of the items after ``seq``: at most MAX_STREAM_ITEMS items and
        about MAX_BATCH_BYTES each; the overflow marker rides on the first."""
        items, overflow = self.since(seq)
        batch: list[Item] = []
        size = 0
        for item in items:
            item_size = len(json.dumps(item, ensure_ascii=False, default=str).encode())
            full = len(batch) >= link.MAX_STREAM_ITEMS or size + item_size > MAX_BATCH_BYTES
            if batch and full:
                yield self._message(batch, overflow)
                overflow = None
                batch, size = [], 0
            batch.append(item)
            size += item_size
        if batch or overflow:
            yield self._message(batch, overflow)

    def _message(self, items: list[Item], overflow: dict[str, int] | None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": link.STREAM, "epoch": self.epoch, "items": items}
        if overflow:
            message["overflow"] = overflow
        return message

    async def wait(self, after: int, seconds: float) -> bool:
        """Wait until an item after ``after`` exists (True) or ``seconds`` pass (False)."""
        if self.last_seq > after:
            return True
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), seconds)
        except TimeoutError:
            return self.last_seq > after
        return True


class StreamLogHandler(logging.Handler):
    """Puts the agent's log records into the stream as ``log`` items."""

    def __init__(self, buffer: StreamBuffer, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.buffer = buffer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self.buffer.add(
                "log", level=record.levelname.lower(), logger=record.name, message=message
            )
        except Exception:  # a log handler must never raise into the code that logged
            self.handleError(record)
