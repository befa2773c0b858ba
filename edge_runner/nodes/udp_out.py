"""``udp out``: send ``msg.payload`` as one UDP datagram (unicast, broadcast or multicast)."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any, ClassVar, Literal

from pydantic import ValidationInfo, field_validator

from edge_runner.contract import (
    Category,
    Msg,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    register,
)
from edge_runner.nodes._netio import (
    UdpSocket,
    blank_default,
    flag,
    parse_port,
    payload_bytes,
    udp_family,
    udp_sockets,
)


class Config(NodeConfig):
    addr: str = ""
    iface: str = ""
    port: int = 0
    ipv: Literal["udp4", "udp6"] = "udp4"
    outport: int = 0
    base64: bool = False
    multicast: Literal["false", "broad", "multi"] = "false"

    @field_validator("port", "outport", mode="before")
    @classmethod
    def _port(cls, value: Any) -> int:
        return parse_port(value)

    @field_validator("base64", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> bool:
        return flag(value)

    @field_validator("multicast", mode="before")
    @classmethod
    def _multicast(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "broad" if value else "false"
        return "false" if value in ("", None) else value

    @field_validator("ipv", mode="before")
    @classmethod
    def _blank(cls, value: Any, info: ValidationInfo) -> Any:
        return blank_default(cls, value, info.field_name or "")


SPEC = NodeSpec(
    type="udp out",
    version=1,
    category=Category.NETWORK,
    inputs=1,
    outputs=0,
    label="udp out",
    color="#c0c0c0",
    icon="bridge-dash.svg",
    help="""Sends `msg.payload` as a UDP datagram to **addr**:**port**.

### Inputs
* `payload`: bytes are sent as they are; with **base64** a string is base64 text to decode;
  anything else is sent as its text (numbers as JavaScript prints them, an object as
  `[object Object]`, like Node-RED).
* `ip`, `port`: the destination when **addr** / **port** are blank (e.g. answering what a
  `udp in` received).

### Details
**multicast** `false` (unicast), `broad` (broadcast allowed) or `multi` (send to the group
**addr** through the interface **iface**). **outport** binds the local port (blank: the system
picks one); when a `udp in` listens on that port the two share the socket. Problems are
warnings: `udp: ip address not set`, `udp: port not set`, `udp: port number not valid`; a
failed send is an error `udp : <reason>` (catchable).
""",
)


@register
class UdpOutNode(Node):
    """Sends each message's payload as one UDP datagram."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.socket: UdpSocket | None = None

    async def start(self) -> None:
        cfg = self.cfg
        family, everywhere = udp_family(cfg.ipv)
        self.socket = await udp_sockets(self.rt.services).bind(
            self, cfg.outport, everywhere, family, reuse=cfg.multicast != "false"
        )
        raw = self.socket.raw
        if cfg.multicast != "false":
            try:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                if family == socket.AF_INET:
                    raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                    if cfg.multicast == "multi":
                        raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 128)
                        if cfg.iface.strip():
                            raw.setsockopt(
                                socket.IPPROTO_IP,
                                socket.IP_MULTICAST_IF,
                                socket.inet_aton(cfg.iface.strip()),
                            )
            except OSError as exc:
                raise NeedsUserFix(
                    f"Must be ip address of the required interface ({exc.strerror})"
                ) from exc
        if cfg.iface:
            self.status(text=f"{cfg.iface} : {cfg.iface}")
        local = self.socket.port
        self.log(f"udp ready: {local} -> {cfg.addr}:{cfg.port}")

    async def on_message(self, msg: Msg) -> None:
        if "payload" not in msg or self.socket is None or self.socket.transport is None:
            return
        host = self.cfg.addr or msg.get("ip") or ""
        port: Any = self.cfg.port or msg.get("port") or 0
        if host == "":
            self.warn("udp: ip address not set")
            return
        if port == 0:
            self.warn("udp: port not set")
            return
        try:
            port = int(port)
        except (TypeError, ValueError):
            port = -1
        if not 1 <= port <= 65535:
            self.warn("udp: port number not valid")
            return
        data = payload_bytes(msg["payload"], self.cfg.base64)
        sock = self.socket
        target: tuple[Any, ...] = (str(host), port)
        try:
            target = await self._resolve(str(host), port, sock.raw.family)
            sock.raw.sendto(data, target)
        except BlockingIOError:
            sock.transport.sendto(data, target)  # the send buffer is full: asyncio queues it
        except OSError as exc:
            raise NodeFailed(f"udp : Error: {exc.strerror or exc}") from exc

    @staticmethod
    async def _resolve(host: str, port: int, family: int) -> tuple[Any, ...]:
        """The destination address, a host name looked up without blocking the loop."""
        try:
            socket.inet_pton(family, host)
        except OSError:
            loop = asyncio.get_running_loop()
            found = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
            if not found:
                raise OSError(errno.ENOENT, f"getaddrinfo ENOTFOUND {host}") from None
            return tuple(found[0][4])
        return (host, port)

    async def stop(self) -> None:
        if self.socket is not None:
            self.socket = None
            udp_sockets(self.rt.services).release(self)
            self.log("udp output stopped")
