"""The websocket endpoint behind ``websocket-listener`` and ``websocket-client`` (one class in
Node-RED too): the connections, what arrives (to every ``websocket in`` using it), what is
sent (to one ``_session`` or to all), and the status events its users show."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import field_validator

from edge_runner.contract import (
    Msg,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeStatus,
    clone_msg,
    new_msgid,
)
from edge_runner.nodes._netio import (
    CONNECT_TIMEOUT_S,
    WEBSOCKET_RECONNECT_CAP_S,
    ensure_string,
    js_json,
    reconnect_schedule,
)
from edge_runner.runtime.http_routes import router_of

if TYPE_CHECKING:
    from aiohttp import web

_URL = re.compile(r"^wss?://", re.IGNORECASE)
# ws, the library Node-RED uses, accepts messages up to 100 MiB by default (aiohttp: 4 MiB).
MAX_MESSAGE = 100 * 1024 * 1024


class EndpointConfig(NodeConfig):
    path: str = ""
    wholemsg: str = "false"

    @field_validator("wholemsg", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return "true" if str(value).strip().lower() == "true" else "false"


def connected_text(count: int | None) -> str:
    """Node-RED's ``websocket.status.connected`` (``connected __count__``); a client has an
    empty count, so its text ends in a space, as Node-RED 5 shows it."""
    return f"connected {'' if count is None else count}"


class WebSocketEndpoint(Node):
    """A websocket listener on the runner's port (path) or a client (ws:// or wss:// URL),
    shared by the ``websocket in`` and ``websocket out`` nodes naming it."""

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        cfg: EndpointConfig = config  # type: ignore[assignment]  # the engine parsed our Config
        self.path = cfg.path.strip()
        self.whole = cfg.wholemsg == "true"
        self.is_server = not _URL.match(self.path)
        self.inputs: list[Node] = []
        self.users: dict[object, Node] = {}
        self.sockets: dict[str, Any] = {}  # server: open connections by session id
        self.client: Any = None  # client: the open aiohttp ClientWebSocketResponse
        self._task: asyncio.Task[None] | None = None
        self.subprotocols: list[str] = []

    # ----------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if not self.is_server:
            return
        if not self.path:
            raise NeedsUserFix("missing path: set the path of this websocket-listener")
        try:
            router_of(self.rt.services).add_websocket(self.path, self, self.accept)
        except ValueError as exc:
            raise NeedsUserFix(str(exc)) from exc

    async def stop(self) -> None:
        router_of(self.rt.services).remove(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for ws in [*self.sockets.values(), self.client]:
            if ws is not None:
                await ws.close(code=1001)
        self.inputs.clear()
        self.users.clear()

    # ------------------------------------------------------------------------ users
    def attach(self, node: Node, inbound: bool) -> None:
        """A ``websocket in`` (``inbound``) or ``websocket out`` starts using this endpoint;
        a client connects when its first user arrives, like Node-RED."""
        self.users[node] = node
        if inbound:
            self.inputs.append(node)
        if not self.is_server and self._task is None:
            self._task = asyncio.create_task(self._connect(), name=f"websocket {self.path}")

    def detach(self, node: Node) -> None:
        self.users.pop(node, None)
        if node in self.inputs:
            self.inputs.remove(node)

    def _show(self, status: NodeStatus) -> None:
        for user in list(self.users.values()):
            user.rt.status(status)

    def _opened(self) -> None:
        count = len(self.sockets) if self.is_server else None
        self._show(NodeStatus("green", "dot", connected_text(count)))

    def _closed(self) -> None:
        if self.is_server and self.sockets:
            self._show(NodeStatus("green", "dot", connected_text(len(self.sockets))))
        else:
            self._show(NodeStatus("red", "ring", "disconnected"))

    # ---------------------------------------------------------------------- messages
    def _received(self, session_id: str, data: str | bytes) -> None:
        msg: Msg
        if self.whole:
            try:
                parsed = js_loads(data)
            except ValueError:
                parsed = data
            # Node-RED sends a JSON array as if it were several outputs and crashes on null;
            # both become msg.payload here, like every other non-object value.
            msg = parsed if isinstance(parsed, dict) else {"payload": parsed}
        else:
            msg = {"payload": data}
        msg["_session"] = {"type": "websocket", "id": session_id}
        for index, node in enumerate(list(self.inputs)):
            node.send(msg if index == 0 else clone_msg(msg))

    def outgoing(self, msg: Msg) -> str | bytes | None:
        """What a ``websocket out`` sends for ``msg`` (None: nothing, like Node-RED for an
        empty string or a missing payload)."""
        data: str | bytes
        if self.whole:
            data = js_json({k: v for k, v in msg.items() if k != "_session"})
        elif "payload" in msg:
            data = ensure_string(msg["payload"])
        else:
            return None
        return data if isinstance(data, bytes) or data else None

    async def deliver(self, msg: Msg, data: str | bytes) -> None:
        session = msg.get("_session")
        if isinstance(session, dict) and session.get("type") == "websocket":
            found = self.sockets.get(str(session.get("id")))
            if found is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await _send(found, data)  # Node-RED drops a reply it cannot send
            return
        targets = list(self.sockets.values()) if self.is_server else [self.client]
        for ws in targets:
            try:
                if ws is None or ws.closed:
                    raise ConnectionError("WebSocket is not open")
                await _send(ws, data)
            except (ConnectionError, RuntimeError) as exc:
                self.warn(f"An error occurred while sending: Error: {exc}")

    # ------------------------------------------------------------------------- server
    async def accept(self, request: web.Request) -> web.WebSocketResponse:
        """Answer one upgrade on the listener's path and serve the connection."""
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(protocols=self.subprotocols, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        session_id = new_msgid()
        self.sockets[session_id] = ws
        self._opened()
        try:
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._received(session_id, message.data)
        finally:
            self.sockets.pop(session_id, None)
            self._closed()
        return ws

    # ------------------------------------------------------------------------- client
    def client_options(self) -> dict[str, Any]:
        """Options of the client connection (subprotocols, headers, TLS, heartbeat)."""
        return {"protocols": self.subprotocols}

    async def _connect(self) -> None:
        import aiohttp

        schedule = reconnect_schedule(WEBSOCKET_RECONNECT_CAP_S)
        limits = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=limits) as http:
            while True:
                try:
                    ws = await http.ws_connect(
                        self.path, max_msg_size=MAX_MESSAGE, **self.client_options()
                    )
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    self.log(f"An error occurred on the ws connection: {exc}")
                    self._show(NodeStatus("red", "ring", "error"))
                    await asyncio.sleep(schedule.next_delay())
                    continue
                schedule.reset()
                session_id = new_msgid()
                self.client = ws
                self._opened()
                try:
                    async for message in ws:
                        if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                            self._received(session_id, message.data)
                finally:
                    self.client = None
                    await ws.close()
                if ws.exception() is not None:
                    self._show(NodeStatus("red", "ring", "error"))
                else:
                    self._closed()
                await asyncio.sleep(schedule.next_delay())


async def _send(ws: Any, data: str | bytes) -> None:
    if isinstance(data, bytes):
        await ws.send_bytes(data)
    else:
        await ws.send_str(data)


def js_loads(data: str | bytes) -> Any:
    """``JSON.parse`` of what arrived (bytes are read as UTF-8 text, like a Buffer)."""
    import json

    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    return json.loads(text)


class UserConfig(NodeConfig):
    server: str = ""
    client: str = ""


class EndpointUser(Node):
    """Base of ``websocket in`` (``INBOUND``) and ``websocket out``: uses the endpoint its
    config names (``client`` wins over ``server``, as in Node-RED) while running."""

    INBOUND: ClassVar[bool] = False

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: UserConfig = config  # type: ignore[assignment]  # the engine parsed it
        self.endpoint: WebSocketEndpoint | None = None

    async def start(self) -> None:
        target = self.cfg.client or self.cfg.server
        found = self.rt.config_node(target) if target else None
        if not isinstance(found, WebSocketEndpoint):
            raise NeedsUserFix("Missing server configuration")
        self.endpoint = found
        found.attach(self, inbound=self.INBOUND)

    async def stop(self) -> None:
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is not None:
            endpoint.detach(self)
