"""``tcp request``: write ``msg.payload`` to a TCP server and send back what it answers,
ended by a timeout, a byte count, a character, or never (stay connected)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from typing import Any, ClassVar, Literal

from pydantic import ValidationInfo, field_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeSpec,
    clone_msg,
    register,
)
from edge_runner.nodes._netio import (
    CONNECT_TIMEOUT_S,
    READ_SIZE,
    blank_default,
    connections_text,
    flag,
    keep_alive,
    parse_port,
    payload_bytes,
    tls_client_context,
    unescape,
)

QUEUE_SIZE = 1000  # Node-RED's tcpMsgQueueSize: the oldest waiting message is dropped past it
_ESCAPES = {"\\n": 0x0A, "\\r": 0x0D, "\\t": 0x09, "\\e": 0x1B, "\\f": 0x0C, "\\0": 0x00}


class Config(NodeConfig):
    server: str = ""
    port: int = 0
    out: Literal["time", "char", "count", "sit", "immed"] = "time"
    ret: Literal["buffer", "string"] = "buffer"
    splitc: str = "0"
    newline: str = ""
    trim: bool = False
    tls: str = ""

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> int:
        return parse_port(value)

    @field_validator("splitc", mode="before")
    @classmethod
    def _splitc(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("trim", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> bool:
        return flag(value)

    def split_number(self) -> float:
        """**splitc** for `time` (milliseconds) and `count` (bytes); -1 for `immed`."""
        if self.out == "immed":
            return -1
        try:
            return float(self.splitc)
        except ValueError:
            return 0

    def split_char(self) -> int:
        """**splitc** for `char`: the byte ending an answer (``\\n``, ``0x0d`` or a character)."""
        text = self.splitc
        if text in _ESCAPES:
            return _ESCAPES[text]
        if text.startswith("0x"):
            try:
                return int(text, 16) & 0xFF
            except ValueError:
                return 0
        return ord(text[0]) & 0xFF if text else 0

    @field_validator("out", "ret", mode="before")
    @classmethod
    def _blank(cls, value: Any, info: ValidationInfo) -> Any:
        return blank_default(cls, value, info.field_name or "")


SPEC = NodeSpec(
    type="tcp request",
    version=1,
    category=Category.NETWORK,
    inputs=1,
    outputs=1,
    label="tcp request",
    color="#c0c0c0",
    icon="bridge-dash.svg",
    help="""Writes `msg.payload` to a TCP server and sends what comes back.

### Inputs
* `payload`: written as bytes (a string as UTF-8, anything else as its text).
* `host`, `port`: the server when **server** / **port** are blank.
* `reset` (*sit* mode): `true` closes every connection, `"host:port"` that one.

### Outputs
* `payload`: the answer, bytes or (with **ret** `string`) a string; the other properties of
  the last message written are kept.

### Details
**out** decides when an answer is complete and the connection closed: `time` after
**splitc** milliseconds from its first byte, `count` after **splitc** bytes, `char` at the
byte **splitc** (`\\n`, `0x0d` or a character; included in the answer), `sit` never (every
chunk is sent as it arrives; with `string` and a **newline** delimiter one message per
part, **trim** keeps the delimiter), `immed` writes and closes without waiting. One
connection per host:port: messages arriving while it connects wait (at most 1000). A failed
connection is the error `connect failed host:port` (catchable) with a red `error` status.
""",
)


class _Connection:
    """One host:port: the messages waiting to be written and the answer being collected."""

    def __init__(self) -> None:
        self.queue: deque[Msg] = deque(maxlen=QUEUE_SIZE)
        self.last: Msg = {}
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.answer = bytearray()
        self.text = ""

    @property
    def connected(self) -> bool:
        return self.writer is not None

    def flush(self) -> None:
        assert self.writer is not None  # noqa: S101  # called once connected
        while self.queue:
            msg = self.queue.popleft()
            if msg.get("payload") is not None:
                self.writer.write(payload_bytes(msg["payload"]))

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()


@register
class TcpRequestNode(Node):
    """Sends a request over TCP and outputs the answer."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.connections: dict[str, _Connection] = {}
        self.newline = unescape(self.cfg.newline)
        self.split = self.cfg.split_number()
        self.char = self.cfg.split_char()
        self.last_id = ""
        self.tls: ssl.SSLContext | None = None

    async def start(self) -> None:
        self.tls = tls_client_context(self, self.cfg.tls)

    def on_message(self, msg: Msg) -> None:
        cfg = self.cfg
        host = cfg.server or msg.get("host")
        port = cfg.port or msg.get("port")
        if cfg.out == "sit" and msg.get("reset"):
            self._reset(msg["reset"])
            if "payload" not in msg:
                return
        if not host or not port:
            self.warn("Host and/or port not set")
            return
        key = f"{host}:{port}"
        if key != self.last_id:
            self.status()
            self.last_id = key
        conn = self.connections.setdefault(key, _Connection())
        conn.queue.append(msg)
        conn.last = msg
        if conn.connected:
            conn.flush()
        elif conn.task is None:
            conn.task = asyncio.create_task(self._run(key, conn, str(host), port))

    def _reset(self, target: Any) -> None:
        if target is True:
            for conn in self.connections.values():
                conn.close()
            self.connections.clear()
        elif isinstance(target, str) and ":" in target and target in self.connections:
            self.connections.pop(target).close()
        count = len(self.connections)
        self.status("green", "ring" if count == 0 else "dot", connections_text(count))

    async def _run(self, key: str, conn: _Connection, host: str, port: Any) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(
                    host, int(port), ssl=self.tls, limit=READ_SIZE
                )
        except (OSError, ValueError, TimeoutError) as exc:
            self.status("red", "ring", "error")
            self.error(f"connect failed {key}: {exc or 'connect timeout'}", conn.last)
            self._forget(key, conn)
            return
        keep_alive(writer)
        conn.writer = writer
        self.status("green", "dot", connections_text(len(self.connections)))
        conn.flush()
        if self.cfg.out == "immed":
            self._forget(key, conn)
            self.status()
            return
        try:
            while chunk := await reader.read(READ_SIZE):
                self._receive(key, conn, chunk)
        except OSError as exc:
            self.status("red", "ring", "error")
            self.error(f"connect failed {key}: {exc}", conn.last)
            self._forget(key, conn)
            return
        if self.connections.get(key) is conn:
            # The server ended the connection before a full answer: the next message
            # connects again (a pending time-out still sends what arrived).
            self.status("grey", "ring", "disconnected")
            if conn.writer is not None:
                conn.writer.close()
                conn.writer = None
            conn.task = None

    def _forget(self, key: str, conn: _Connection) -> None:
        if self.connections.get(key) is conn:
            del self.connections[key]
        conn.close()

    def _answer(self, conn: _Connection, data: bytes | str) -> None:
        msg = clone_msg(conn.last)
        if self.cfg.ret == "string" and isinstance(data, bytes):
            msg["payload"] = data.decode("utf-8", errors="replace")
        else:
            msg["payload"] = data
        self.send(msg)

    def _complete(self, key: str, conn: _Connection) -> None:
        """The answer is whole: send it and close the connection."""
        data = bytes(conn.answer)
        conn.answer.clear()
        self._answer(conn, data)
        self.status()
        self._forget(key, conn)

    def _receive(self, key: str, conn: _Connection, chunk: bytes) -> None:
        out = self.cfg.out
        if out == "sit":
            if self.cfg.ret != "string":
                self._answer(conn, chunk)
            elif self.newline:
                conn.text += chunk.decode("utf-8", errors="replace")
                *parts, conn.text = conn.text.split(self.newline)
                for part in parts:
                    self._answer(conn, part + self.newline if self.cfg.trim else part)
            else:
                self._answer(conn, chunk.decode("utf-8", errors="replace"))
        elif out == "time":
            conn.answer += chunk
            if conn.timer is None:
                conn.timer = asyncio.get_running_loop().call_later(
                    max(0.0, self.split) / 1000, self._complete, key, conn
                )
        elif out == "count":
            size = max(1, int(self.split))
            conn.answer += chunk
            if len(conn.answer) >= size:
                del conn.answer[size:]
                self._complete(key, conn)
        else:
            end = chunk.find(bytes([self.char]))
            if end < 0:
                conn.answer += chunk
            else:
                conn.answer += chunk[: end + 1]
                self._complete(key, conn)

    async def stop(self) -> None:
        tasks = [c.task for c in self.connections.values() if c.task is not None]
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
