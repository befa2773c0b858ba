"""The ``/comms`` websocket: Node-RED's editor event stream (debug, status, notifications).

Server -> client frames are JSON arrays of ``{"topic", "data"}`` items. Items published during
one event-loop turn go out together in the next turn (no timer, so no added latency; a burst
still becomes few frames). Each connection has a bounded queue: when a client reads too slowly
the oldest items are dropped and the next frame starts with an explicit warning item saying how
many were lost, so a gap is never silent. ``status/<id>`` and ``notification/*`` topics are
retained and replayed to a client when it subscribes to a matching pattern (MQTT wildcards
``+``/``#``). After 15 s without traffic a client gets ``{"topic": "hb", "data": <epoch ms>}``.

Who may connect is decided before the upgrade, by the server's ``AdminGuard`` middleware
(Host, Origin and, when configured, ``Authorization: Bearer``), exactly as for the Admin API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("edge_runner.comms")

HEARTBEAT_S = 15.0
MAX_PENDING = 10_000  # items queued per connection before the oldest are dropped
MAX_BATCH = 500  # items per frame
MAX_INCOMING = 64 * 1024  # client frames are tiny subscribe commands; larger closes with 1009
MAX_SUBSCRIPTIONS = 256


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter match: ``+`` is one level, a trailing ``#`` any number of levels."""
    if pattern == topic or pattern == "#":
        return True
    pat = pattern.split("/")
    top = topic.split("/")
    for i, part in enumerate(pat):
        if part == "#":
            return i == len(pat) - 1
        if i >= len(top):
            return False
        if part != "+" and part != top[i]:
            return False
    return len(pat) == len(top)


def _json_safe(value: Any) -> Any:
    # Items are normally JSON-ready already; this is the slow path for stray NaN/bytes/objects.
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"type": "Buffer", "data": list(value)}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def encode_item(topic: str, data: Any) -> str:
    """One ``{"topic", "data"}`` item as compact JSON text."""
    item = {"topic": topic, "data": data}
    try:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(_json_safe(item), separators=(",", ":"), ensure_ascii=False)


def is_retained(topic: str) -> bool:
    return topic.startswith(("status/", "notification/"))


class CommsConnection:
    """One websocket client: its subscriptions, its bounded queue and its writer task."""

    def __init__(self, hub: CommsHub, ws: web.WebSocketResponse) -> None:
        self.hub = hub
        self.ws = ws
        self.patterns: list[str] = []
        self._match_cache: dict[str, bool] = {}
        self.pending: deque[str] = deque()
        self.dropped = 0
        self.wakeup = asyncio.Event()
        self.closed = False
        self.last_sent = time.monotonic()
        self.writer: asyncio.Task[None] | None = None

    def wants(self, topic: str) -> bool:
        cached = self._match_cache.get(topic)
        if cached is None:
            cached = any(topic_matches(p, topic) for p in self.patterns)
            if len(self._match_cache) > 4096:  # status/<id> topics grow with the flow size
                self._match_cache.clear()
            self._match_cache[topic] = cached
        return cached

    def enqueue(self, text: str) -> None:
        if self.closed:
            return
        pending = self.pending
        if len(pending) >= MAX_PENDING:
            pending.popleft()
            self.dropped += 1
        pending.append(text)
        if len(pending) == 1:
            self.wakeup.set()

    def handle_command(self, raw: str) -> None:
        try:
            command = json.loads(raw)
        except ValueError:
            log.warning("comms: ignored a frame that is not JSON")
            return
        if not isinstance(command, dict):
            log.warning("comms: ignored a frame that is not a JSON object")
            return
        topic = command.get("subscribe")
        if isinstance(topic, str) and topic:
            if topic not in self.patterns:
                if len(self.patterns) >= MAX_SUBSCRIPTIONS:
                    log.warning("comms: subscription limit reached, ignored %r", topic)
                    return
                self.patterns.append(topic)
                self._match_cache.clear()
            for retained_topic, text in list(self.hub.retained.items()):
                if topic_matches(topic, retained_topic):
                    self.enqueue(text)
            return
        topic = command.get("unsubscribe")
        if isinstance(topic, str) and topic in self.patterns:
            self.patterns.remove(topic)
            self._match_cache.clear()

    async def run_writer(self) -> None:
        ws = self.ws
        pending = self.pending
        try:
            while not self.closed:
                if not pending:
                    self.wakeup.clear()
                    idle_for = time.monotonic() - self.last_sent
                    try:
                        await asyncio.wait_for(self.wakeup.wait(), max(0.0, HEARTBEAT_S - idle_for))
                    except TimeoutError:
                        if time.monotonic() - self.last_sent >= HEARTBEAT_S and not pending:
                            await ws.send_str(
                                "[" + encode_item("hb", int(time.time() * 1000)) + "]"
                            )
                            self.last_sent = time.monotonic()
                        continue
                batch: list[str] = []
                if self.dropped:
                    text = f"comms: {self.dropped} message(s) dropped, the client read too slowly"
                    warning = {
                        "level": 30,
                        "id": "comms",
                        "type": "comms",
                        "z": "",
                        "path": "",
                        "msg": text,
                        "format": f"string[{len(text)}]",
                        "timestamp": int(time.time() * 1000),
                    }
                    batch.append(encode_item("debug", warning))
                    self.dropped = 0
                while pending and len(batch) < MAX_BATCH:
                    batch.append(pending.popleft())
                await ws.send_str("[" + ",".join(batch) + "]")
                self.last_sent = time.monotonic()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True


class CommsHub:
    """All ``/comms`` connections plus the retained topics; the engine publishes through it."""

    def __init__(self) -> None:
        self.connections: set[CommsConnection] = set()
        self.retained: dict[str, str] = {}

    def publish(self, topic: str, data: Any, retain: bool | None = None) -> None:
        """Send ``data`` on ``topic`` to every subscribed client (and keep it if retained)."""
        if retain is None:
            retain = is_retained(topic)
        if retain:
            if topic.startswith("status/") and not data:
                self.retained.pop(topic, None)
                text = None
            else:
                text = self.retained[topic] = encode_item(topic, data)
        else:
            text = None
        if not self.connections:
            return
        for conn in self.connections:
            if conn.wants(topic):
                if text is None:
                    text = encode_item(topic, data)
                conn.enqueue(text)

    def on_engine_event(self, topic: str, data: Any) -> None:
        """Engine listener: debug items, ``status/<id>`` changes, notifications."""
        self.publish(topic, data)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler for ``GET /comms`` (the websocket upgrade)."""
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(max_msg_size=MAX_INCOMING, autoping=True, compress=False)
        await ws.prepare(request)
        conn = CommsConnection(self, ws)
        self.connections.add(conn)
        conn.writer = asyncio.get_running_loop().create_task(conn.run_writer())
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    conn.handle_command(frame.data)
                elif frame.type == WSMsgType.ERROR:
                    log.info("comms: connection closed with %s", ws.exception())
                    break
        finally:
            conn.closed = True
            conn.wakeup.set()
            self.connections.discard(conn)
            if conn.writer is not None:
                conn.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await conn.writer
        return ws

    async def close(self) -> None:
        """Close every client connection (going away)."""
        from aiohttp import WSCloseCode

        for conn in list(self.connections):
            conn.closed = True
            conn.wakeup.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=WSCloseCode.GOING_AWAY), 1.0)
        self.connections.clear()
