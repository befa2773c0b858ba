"""``tcp in``: a TCP server accepting connections, or a client keeping one connection open,
sending what arrives as a stream of messages or one message per connection."""

from __future__ import annotations

import asyncio
import base64
import codecs
from typing import Any, ClassVar, Literal

from pydantic import ValidationInfo, field_validator

from edge_runner.contract import (
    Category,
    Msg,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeSpec,
    new_msgid,
    register,
)
from edge_runner.nodes._netio import (
    READ_SIZE,
    TcpClient,
    TcpServer,
    blank_default,
    flag,
    parse_port,
    refuse_tls_server,
    tcp_sessions,
    tls_client_context,
    unescape,
)


class Config(NodeConfig):
    server: Literal["server", "client"] = "server"
    host: str = ""
    port: int = 0
    datamode: Literal["stream", "single"] = "stream"
    datatype: Literal["buffer", "utf8", "base64"] = "buffer"
    newline: str = ""
    topic: str = ""
    trim: bool = False
    base64: bool = False  # deprecated by Node-RED (datatype "base64" replaced it); ignored
    tls: str = ""

    @field_validator("server", mode="before")
    @classmethod
    def _server(cls, value: Any) -> Any:
        # the oldest flows store a boolean
        if isinstance(value, bool):
            return "server" if value else "client"
        return "server" if value in ("", None) else value

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> int:
        return parse_port(value)

    @field_validator("trim", "base64", mode="before")
    @classmethod
    def _flags(cls, value: Any) -> bool:
        return flag(value)

    @field_validator("datamode", "datatype", mode="before")
    @classmethod
    def _blank(cls, value: Any, info: ValidationInfo) -> Any:
        return blank_default(cls, value, info.field_name or "")


SPEC = NodeSpec(
    type="tcp in",
    version=1,
    category=Category.NETWORK,
    inputs=0,
    outputs=1,
    label="tcp in",
    color="#c0c0c0",
    icon="bridge-dash.svg",
    help="""Receives data over TCP, as a server (**server** `server`, listening on **port**)
or as a client (`client`, connected to **host**:**port**).

### Outputs
* `payload`: per **datatype**: `buffer` (bytes), `utf8` (a string) or `base64` (a base64
  string).
* `topic`: the node's **topic**.
* `ip`, `port`: the peer (server mode).
* `_session`: `{type: "tcp", id}` naming the connection: a `tcp out` in *reply* mode answers
  it.

### Details
**datamode** `stream` sends what arrives as it arrives; with `utf8` and a **newline**
delimiter (`\\n` written as two characters is understood) it sends one message per delimited
part (**trim**: keep the delimiter on the end). `single` sends everything a connection carried
as one message when the peer closes it.

In server mode the status counts connections (`1 connection`). Node-RED listens on every
interface; the runner listens on **host** when the field holds an address (left over when the
node was switched from client to server, or set on purpose), and on every interface when it is
blank. In client mode the status follows the connection (`connecting`, `connected`,
`disconnected`) and a lost connection is retried with growing random pauses of at most 10 s;
after the peer closed a connection that carried data it reconnects at once. With a
**tls** config node client mode connects with TLS; server mode with TLS is refused with a
reason.
""",
)


class _Receiver:
    """What one connection has sent so far, turned into messages per the node's modes."""

    def __init__(self, node: TcpInNode, session_id: str, ip: str | None, port: int | None):
        self.node = node
        self.session = {"type": "tcp", "id": session_id}
        self.peer: dict[str, Any] = {} if ip is None else {"ip": ip, "port": port}
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.data = bytearray()

    def _send(self, payload: Any) -> None:
        msg: Msg = {"topic": self.node.cfg.topic, "payload": payload, **self.peer}
        msg["_session"] = dict(self.session)
        self.node.send(msg)

    def receive(self, chunk: bytes) -> None:
        cfg = self.node.cfg
        if cfg.datamode == "single":
            self.data += chunk
            return
        if cfg.datatype == "buffer":
            self._send(chunk)
        elif cfg.datatype == "base64":
            self._send(base64.b64encode(chunk).decode())
        elif self.node.newline:
            self.text += self.decoder.decode(chunk)
            *parts, self.text = self.text.split(self.node.newline)
            for part in parts:
                self._send(part + self.node.newline if cfg.trim else part)
        else:
            self._send(self.decoder.decode(chunk))

    def end(self) -> bool:
        """The peer closed its side: send what is held back; True when something was sent."""
        cfg = self.node.cfg
        if cfg.datamode == "single" and self.data:
            data = bytes(self.data)
            if cfg.datatype == "utf8":
                self._send(data.decode("utf-8", errors="replace"))
            elif cfg.datatype == "base64":
                self._send(base64.b64encode(data).decode())
            else:
                self._send(data)
            return True
        rest = self.text + self.decoder.decode(b"", final=True)
        if cfg.datamode == "stream" and self.node.newline and rest:
            self._send(rest)
            return True
        return False


@register
class TcpInNode(Node):
    """Sends what arrives over TCP connections (server or client)."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.newline = unescape(self.cfg.newline) if self.cfg.datatype == "utf8" else ""
        self.server: TcpServer | None = None
        self.client: TcpClient | None = None
        self.receivers: dict[str, _Receiver] = {}

    async def start(self) -> None:
        cfg = self.cfg
        if not cfg.port:
            raise NeedsUserFix("Invalid port")
        if cfg.server == "client":
            if not cfg.host:
                raise NeedsUserFix("Invalid host")
            self.client = TcpClient(
                self,
                cfg.host,
                cfg.port,
                tls_client_context(self, cfg.tls),
                self._client_data,
                self._client_end,
            )
            self.client.start()
            return
        refuse_tls_server(cfg.tls)
        self.server = TcpServer(self, cfg.host, cfg.port)
        await self.server.listen(self._serve)

    # client mode ---------------------------------------------------------------------------
    def _client_data(self, chunk: bytes, session_id: str) -> None:
        receiver = self.receivers.get(session_id)
        if receiver is None:
            self.receivers.clear()  # the previous connection's leftovers went with it
            receiver = self.receivers[session_id] = _Receiver(self, session_id, None, None)
        receiver.receive(chunk)

    def _client_end(self, session_id: str) -> bool:
        receiver = self.receivers.pop(session_id, None)
        return receiver.end() if receiver is not None else False

    # server mode ---------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session_id = new_msgid()
        host, port = writer.get_extra_info("peername")[:2]
        sessions = tcp_sessions(self.rt.services)
        sessions.add(session_id, writer)
        receiver = _Receiver(self, session_id, host, port)
        try:
            while chunk := await reader.read(READ_SIZE):
                receiver.receive(chunk)
            receiver.end()
        except OSError as exc:
            self.log(f"socket error from {host}:{port}: {exc}")
        finally:
            sessions.discard(session_id)

    async def stop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()
        if self.server is not None:
            await self.server.close()
