"""What the TCP, UDP and websocket nodes share: JavaScript's payload conversions, the engine's
open TCP sessions (``msg._session`` routing) and the engine's UDP sockets by port, field
parsing, and the reconnect schedule of client connections."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import json
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any

from edge_runner.contract import NeedsUserFix, Node, NodeFailed, Services, new_msgid
from edge_runner.lib.backoff import Backoff
from edge_runner.nodes.debug import js_number

# Node-RED retries a lost TCP connection every 10 s (``socketReconnectTime``) and a websocket
# client every 3 s. We keep those as the caps of the runner's full-jitter schedule: a peer that
# comes back quickly is found again quickly, a fleet that lost it does not retry in step.
TCP_RECONNECT_CAP_S = 10.0
WEBSOCKET_RECONNECT_CAP_S = 3.0
RECONNECT_BASE_S = 0.25
# After the peer closed a connection that carried data Node-RED reconnects at once (20 ms).
QUICK_RECONNECT_S = 0.02
READ_SIZE = 65536
# A peer that drops SYNs would hold a connection attempt for the OS's ~2 minutes; the reconnect
# schedule wants an answer sooner.
CONNECT_TIMEOUT_S = 10.0


def reconnect_schedule(cap: float) -> Backoff:
    return Backoff(RECONNECT_BASE_S, cap)


def js_text(value: Any) -> str:
    """JavaScript's ``"" + value``: how the tcp and udp nodes turn a non-buffer payload into
    text (an object becomes ``[object Object]``, an array its items joined by commas)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple)):
        return ",".join("" if item is None else js_text(item) for item in value)
    return "[object Object]"


def _buffer_json(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"type": "Buffer", "data": list(value)}
    raise TypeError(f"{type(value).__name__} is not data")


def js_json(value: Any) -> str:
    """``JSON.stringify``: bytes become Node's ``{"type": "Buffer", "data": [...]}``."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_buffer_json)
    except (TypeError, ValueError) as exc:
        raise NodeFailed(f"message cannot be sent as JSON: {exc}") from exc


def ensure_string(value: Any) -> str | bytes:
    """Node-RED's ``RED.util.ensureString`` for the websocket out node: bytes stay bytes,
    objects and arrays become JSON, anything else its text."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, (dict, list)):
        return js_json(value)
    return js_text(value)


def payload_bytes(value: Any, from_base64: bool = False) -> bytes:
    """The bytes the tcp and udp output nodes write for ``msg.payload``; with ``from_base64``
    a string payload is base64 text to decode first."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if from_base64 and isinstance(value, str):
        try:
            return base64.b64decode(value + "=" * (-len(value) % 4), validate=False)
        except (binascii.Error, ValueError) as exc:
            raise NodeFailed(f"payload is not base64 text: {exc}") from exc
    return js_text(value).encode()


def unescape(text: str) -> str:
    """A delimiter as the editor stores it (``\\n``, ``\\r``, ``\\t`` typed as two characters)."""
    return text.replace("\\n", "\n").replace("\\r", "\r").replace("\\t", "\t")


def parse_port(value: Any, what: str = "port", blank_ok: bool = True) -> int:
    """A port field as Node-RED writes it (number or text); 0 when blank and allowed."""
    if value in ("", None):
        if blank_ok:
            return 0
        raise ValueError(f"{what} is not set")
    try:
        port = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{what} must be a number 1..65535, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{what} must be a number 1..65535, got {value!r}")
    return port


def blank_default(model: Any, value: Any, field_name: str) -> Any:
    """A blank choice field (``""`` or ``null``, as older editors wrote it) takes its default."""
    return model.model_fields[field_name].default if value in ("", None) else value


def flag(value: Any) -> bool:
    """A boolean field that older editors or hand-written flows store as text."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


# ----------------------------------------------------------------------- TCP sessions


class TcpSessions:
    """The engine's open TCP connections by session id, Node-RED's ``connectionPool``: every
    ``tcp in`` connection (server or client side) is here, so a ``tcp out`` in *reply* mode
    answers the connection named by ``msg._session``."""

    def __init__(self) -> None:
        self.writers: dict[str, Any] = {}  # asyncio.StreamWriter by session id

    def add(self, session_id: str, writer: Any) -> None:
        self.writers[session_id] = writer

    def discard(self, session_id: str) -> None:
        self.writers.pop(session_id, None)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


def tcp_sessions(services: Services) -> TcpSessions:
    return services.get("tcp.sessions", TcpSessions)


# ------------------------------------------------------------------------ UDP sockets

DatagramListener = Callable[[bytes, tuple[Any, ...]], None]


class UdpSocket(asyncio.DatagramProtocol):
    """One bound UDP socket, shared like Node-RED's ``udpInputPortsInUse``: a ``udp in`` and a
    ``udp out`` whose local port is the same use one socket, so replies leave from the port
    the peer wrote to."""

    def __init__(self, port: int, raw: socket.socket) -> None:
        self.port = port
        self.raw = raw  # for socket options and immediate send errors
        self.transport: Any = None  # asyncio.DatagramTransport once bound
        self.listeners: dict[object, DatagramListener] = {}
        self.users: set[object] = set()

    def connection_made(self, transport: Any) -> None:  # asyncio.DatagramProtocol
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        for listener in list(self.listeners.values()):
            listener(data, addr)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors of earlier sends (port unreachable): the next send reports them."""

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def close(self) -> None:
        # The transport closes its socket only on the next loop turn; a redeploy binds the
        # same port at once, so the socket is closed here (the transport already stopped
        # watching it).
        if self.transport is not None:
            self.transport.close()
        self.raw.close()


class UdpSockets:
    """The engine's bound UDP sockets by local port."""

    def __init__(self) -> None:
        self.by_port: dict[int, UdpSocket] = {}

    async def bind(
        self, user: object, port: int, host: str, family: int, reuse: bool = False
    ) -> UdpSocket:
        """The socket bound to local ``port`` (made on first use, then shared); ``port`` 0
        binds a fresh socket to a port the system picks. ``reuse`` sets SO_REUSEADDR
        (multicast, like Node-RED's ``reuseAddr``). NeedsUserFix with Node-RED's words when
        the address cannot be bound."""
        found = self.by_port.get(port) if port else None
        if found is None:
            raw = socket.socket(family, socket.SOCK_DGRAM)
            found = UdpSocket(port, raw)
            try:
                if reuse:
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                raw.bind((host, port))
                raw.setblocking(False)
                loop = asyncio.get_running_loop()
                await loop.create_datagram_endpoint(lambda: found, sock=raw)
            except OSError as exc:
                raw.close()
                raise NeedsUserFix(_bind_failure(exc, port)) from exc
            except BaseException:
                raw.close()
                raise
            found.port = raw.getsockname()[1]
            self.by_port[found.port] = found
        found.users.add(user)
        return found

    def release(self, user: object) -> None:
        for port, sock in list(self.by_port.items()):
            sock.listeners.pop(user, None)
            sock.users.discard(user)
            if not sock.users:
                sock.close()
                del self.by_port[port]

    def close(self) -> None:
        for sock in self.by_port.values():
            sock.close()
        self.by_port.clear()


def _bind_failure(exc: OSError, port: int) -> str:
    if exc.errno == errno.EACCES and port < 1024:
        return "UDP access error, you may need root access for ports below 1024"
    if exc.errno == errno.EADDRINUSE:
        return f"udp: port {port} already in use"
    return f"error: {exc.strerror or exc}"


def udp_family(ipv: str) -> tuple[int, str]:
    """The address family of ``ipv`` (``udp4``/``udp6``) and its every-interface address."""
    if ipv == "udp6":
        return socket.AF_INET6, "::"
    return socket.AF_INET, "0.0.0.0"  # noqa: S104  # Node-RED binds every interface


def udp_sockets(services: Services) -> UdpSockets:
    return services.get("udp.sockets", UdpSockets)


# ------------------------------------------------------------------------ TCP clients


def connections_text(count: int) -> str:
    """Node-RED's ``tcpin.status.connections`` with its plural form."""
    return f"{count} connection" if count == 1 else f"{count} connections"


def keep_alive(writer: Any) -> None:
    """TCP keep-alive on a connection, as Node-RED sets it on every tcp socket."""
    raw = writer.get_extra_info("socket")
    if raw is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def tls_client_context(node: Node, tls_id: str) -> ssl.SSLContext | None:
    """The client TLS context of the ``tls-config`` node ``tls_id`` names, or None."""
    if not tls_id:
        return None
    from edge_runner.nodes.tls_config import tls_of

    return tls_of(node, tls_id).client_context()


def refuse_tls_server(tls_id: str) -> None:
    if tls_id:
        raise NeedsUserFix(
            "a TLS server needs a server certificate setup the runner does not offer yet; "
            "remove the tls-config from this node or terminate TLS in front of it"
        )


class TcpClient:
    """A client connection kept open to ``host:port`` (``tcp in`` and ``tcp out`` in client
    mode): status and log like Node-RED (connecting, connected, disconnected, connection
    lost), every chunk read to ``on_data``, the peer's end of stream to ``on_end`` (True:
    something was delivered, so reconnect at once like Node-RED), reconnects on the full-jitter
    schedule capped at Node-RED's 10 s. The open connection is in the engine's TCP sessions."""

    def __init__(
        self,
        node: Node,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        on_data: Callable[[bytes, str], None],
        on_end: Callable[[str], bool],
    ) -> None:
        self.node = node
        self.host = host
        self.port = port
        self.tls = tls
        self.on_data = on_data
        self.on_end = on_end
        self.writer: asyncio.StreamWriter | None = None
        self.quick = False
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.writer is not None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"tcp client {self.node.id}")

    def drop(self) -> None:
        """Close the connection now and reconnect at once (``tcp out``'s *close after send*)."""
        if self.writer is not None:
            self.quick = True
            self.writer.close()

    async def _run(self) -> None:
        node, where = self.node, f"{self.host}:{self.port}"
        sessions = tcp_sessions(node.rt.services)
        schedule = reconnect_schedule(TCP_RECONNECT_CAP_S)
        while True:
            node.log(f"connecting to {where}")
            node.status("grey", "dot", "connecting")
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    reader, writer = await asyncio.open_connection(
                        self.host, self.port, ssl=self.tls, limit=READ_SIZE
                    )
            except (OSError, TimeoutError) as exc:
                node.log(f"error: {exc}")
                node.status("red", "ring", "disconnected")
                node.log(f"connection lost to {where}")
                await asyncio.sleep(schedule.next_delay())
                continue
            schedule.reset()
            session_id = new_msgid()
            keep_alive(writer)
            self.writer, self.quick = writer, False
            sessions.add(session_id, writer)
            node.log(f"connected to {where}")
            node.status("green", "dot", "connected")
            try:
                while chunk := await reader.read(READ_SIZE):
                    self.on_data(chunk, session_id)
                self.quick = self.on_end(session_id) or self.quick
            except OSError as exc:
                node.log(f"error: {exc}")
            finally:
                sessions.discard(session_id)
                self.writer = None
                writer.close()
            node.status("red", "ring", "disconnected")
            if self.quick:
                await asyncio.sleep(QUICK_RECONNECT_S)
            else:
                node.log(f"connection lost to {where}")
                await asyncio.sleep(schedule.next_delay())

    async def close(self) -> None:
        task, self._task = self._task, None
        if self.writer is not None:
            self.writer.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ------------------------------------------------------------------------ TCP servers


class TcpServer:
    """A listening socket of ``tcp in`` or ``tcp out`` in server mode and its connections,
    counted in the node's status like Node-RED (``2 connections``)."""

    def __init__(self, node: Node, host: str, port: int) -> None:
        self.node = node
        self.host = host
        self.port = port
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()

    async def listen(
        self, serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]
    ) -> None:
        """Listen on ``host`` (blank: every interface, like Node-RED) and ``port``."""

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            keep_alive(writer)
            self.connections.add(writer)
            self.node.status(text=connections_text(len(self.connections)))
            try:
                await serve(reader, writer)
            finally:
                self.connections.discard(writer)
                writer.close()
                if self.server is not None:
                    self.node.status(text=connections_text(len(self.connections)))

        try:
            self.server = await asyncio.start_server(
                accept, self.host or None, self.port, limit=READ_SIZE, reuse_address=True
            )
        except OSError as exc:
            reason = (
                f"listen {errno.errorcode.get(exc.errno, exc.errno)}: "
                f"{os.strerror(exc.errno).lower()}"
                if exc.errno
                else str(exc)
            )
            if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
                # Node-RED ignores host in server mode; a value left from client mode names
                # the peer, not this machine.
                reason += (
                    f" (host {self.host!r} is not an address of this machine: clear it to "
                    "listen on every interface, as Node-RED does)"
                )
            raise NeedsUserFix(
                f"unable to listen on port {self.port}, error: Error: {reason}"
            ) from exc
        self.node.log(f"listening on port {self.port}")

    async def close(self) -> None:
        server, self.server = self.server, None
        if server is None:
            return
        server.close()
        for writer in list(self.connections):
            writer.close()
        await server.wait_closed()
        self.node.log(f"stopped listening on port {self.port}")
