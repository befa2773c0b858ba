"""``tcp out``: write ``msg.payload`` to a TCP connection: as a client, as a server to every
connected client, or as the reply to the connection a ``tcp in`` message came from."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from pydantic import ValidationInfo, field_validator

from edge_runner.contract import Category, Msg, NeedsUserFix, Node, NodeConfig, NodeSpec, register
from edge_runner.nodes._netio import (
    READ_SIZE,
    TcpClient,
    TcpServer,
    blank_default,
    connections_text,
    flag,
    parse_port,
    payload_bytes,
    refuse_tls_server,
    tcp_sessions,
    tls_client_context,
)


class Config(NodeConfig):
    host: str = ""
    port: int = 0
    beserver: Literal["client", "server", "reply"] = "client"
    base64: bool = False
    end: bool = False
    tls: str = ""

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> int:
        return parse_port(value)

    @field_validator("base64", "end", mode="before")
    @classmethod
    def _flags(cls, value: Any) -> bool:
        return flag(value)

    @field_validator("beserver", mode="before")
    @classmethod
    def _blank(cls, value: Any, info: ValidationInfo) -> Any:
        return blank_default(cls, value, info.field_name or "")


SPEC = NodeSpec(
    type="tcp out",
    version=1,
    category=Category.NETWORK,
    inputs=1,
    outputs=0,
    label="tcp out",
    color="#c0c0c0",
    icon="bridge-dash.svg",
    help="""Writes `msg.payload` over TCP.

### Inputs
* `payload`: bytes are written as they are; with **base64** a string is base64 text to
  decode; anything else is written as its text (like Node-RED: an object as
  `[object Object]`). A message without a payload (or `null`) writes nothing.
* `_session`: in *reply* mode, the `tcp in` connection to answer; without it every open
  `tcp in` connection gets the payload.
* `reset`: `true` in *reply* mode closes the connection instead of writing.

### Details
**beserver** `client` connects to **host**:**port** and keeps the connection open
(reconnecting with growing random pauses of at most 10 s; messages arriving while it is down
are dropped, as in Node-RED); `server` listens on **port** (on **host** when it holds an
address, else every interface) and writes to every connected client, the status counting
them; `reply` answers `tcp in` connections. **end** closes the connection after each write
(a client then reconnects at once).
""",
)


@register
class TcpOutNode(Node):
    """Writes each message's payload to a TCP connection."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.client: TcpClient | None = None
        self.server: TcpServer | None = None

    async def start(self) -> None:
        cfg = self.cfg
        if cfg.beserver == "reply":
            return
        if not cfg.port:
            raise NeedsUserFix("Invalid port")
        if cfg.beserver == "client":
            if not cfg.host:
                raise NeedsUserFix("Invalid host")
            tls = tls_client_context(self, cfg.tls)
            self.client = TcpClient(self, cfg.host, cfg.port, tls, self._ignore, self._ended)
            self.client.start()
            return
        refuse_tls_server(cfg.tls)
        self.server = TcpServer(self, cfg.host, cfg.port)
        self.status(text=connections_text(0))
        await self.server.listen(self._serve)

    @staticmethod
    def _ignore(chunk: bytes, session_id: str) -> None:
        """What a peer writes to a tcp out is not read into messages (Node-RED drops it)."""

    @staticmethod
    def _ended(session_id: str) -> bool:
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        self.log(f"connection from {host}:{port}")
        try:
            while await reader.read(READ_SIZE):
                pass
        except OSError:
            self.log(f"socket error from {host}:{port}")
        finally:
            self.log(f"connection closed from {host}:{port}")

    def on_message(self, msg: Msg) -> None:
        payload = msg.get("payload")
        mode = self.cfg.beserver
        if mode == "reply":
            self._reply(msg)
        elif payload is None:
            return
        elif mode == "client":
            client = self.client
            if client is not None and client.writer is not None:
                client.writer.write(payload_bytes(payload, self.cfg.base64))
                if self.cfg.end:
                    self.status()
                    client.drop()
        elif self.server is not None:
            data = payload_bytes(payload, self.cfg.base64)
            for writer in list(self.server.connections):
                writer.write(data)
                if self.cfg.end:
                    writer.close()

    def _reply(self, msg: Msg) -> None:
        sessions = tcp_sessions(self.rt.services).writers
        session = msg.get("_session")
        if isinstance(session, dict) and session.get("type") == "tcp":
            found = sessions.get(str(session.get("id")))
            targets = [found] if found is not None else []
        else:
            targets = list(sessions.values())
        for writer in targets:
            if msg.get("reset") is True:
                writer.transport.abort()
            else:
                writer.write(payload_bytes(msg.get("payload"), self.cfg.base64))

    async def stop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()
        if self.server is not None:
            await self.server.close()
