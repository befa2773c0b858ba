"""``udp in``: receive UDP datagrams (unicast or a multicast group) on a local port."""

from __future__ import annotations

import base64
import errno
import ipaddress
import socket
import struct
from typing import Any, ClassVar, Literal

from pydantic import ValidationInfo, field_validator

from edge_runner.contract import (
    Category,
    Msg,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeSpec,
    register,
)
from edge_runner.nodes._netio import UdpSocket, blank_default, parse_port, udp_family, udp_sockets


class Config(NodeConfig):
    iface: str = ""
    port: int = 0
    ipv: Literal["udp4", "udp6"] = "udp4"
    multicast: Literal["false", "true"] = "false"
    group: str = ""
    datatype: Literal["buffer", "utf8", "base64"] = "buffer"

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> int:
        return parse_port(value)

    @field_validator("multicast", mode="before")
    @classmethod
    def _multicast(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        return "false" if value in ("", None) else value

    def check(self) -> None:
        """What Node-RED's editor flags but its runtime still deploys: a start failure here."""
        if not self.port:
            raise NeedsUserFix("udp: port not set")
        if self.multicast == "true":
            try:
                group = ipaddress.ip_address(self.group.strip())
            except ValueError:
                raise NeedsUserFix(f"invalid multicast group {self.group!r}") from None
            if not group.is_multicast:
                raise NeedsUserFix(f"Bad Multicast Address {self.group!r}")

    @field_validator("ipv", "datatype", mode="before")
    @classmethod
    def _blank(cls, value: Any, info: ValidationInfo) -> Any:
        return blank_default(cls, value, info.field_name or "")


SPEC = NodeSpec(
    type="udp in",
    version=1,
    category=Category.NETWORK,
    inputs=0,
    outputs=1,
    label="udp in",
    color="#c0c0c0",
    icon="bridge-dash.svg",
    help="""Receives UDP datagrams on a local **port** and sends one message per datagram.

### Outputs
* `payload`: the datagram per **datatype**: `buffer` (bytes), `utf8` (a string) or `base64`
  (a base64 string).
* `fromip` (`"address:port"`), `ip` and `port`: the sender.

### Details
**multicast** `"true"` joins the multicast **group** on the interface **iface** (an address
like `192.168.1.10` or a name like `eth0`; blank: the system's default); `"false"` receives
unicast and broadcast datagrams. **ipv** `udp4` or `udp6`. Node-RED always binds every
interface; the runner binds the address given in **iface** for unicast when there is one
(blank: every interface), so a listener can be kept to one network. A `udp out` whose local
port is this port sends from this same socket, so replies come from the port the peer wrote
to. Ports below 1024 need root
("UDP access error, you may need root access for ports below 1024").
""",
)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@register
class UdpInNode(Node):
    """Sends a message for every UDP datagram arriving on its port."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.socket: UdpSocket | None = None

    async def start(self) -> None:
        cfg = self.cfg
        cfg.check()
        family, everywhere = udp_family(cfg.ipv)
        iface = cfg.iface.strip()
        if iface and not _is_address(iface) and iface not in dict(socket.if_nameindex()).values():
            self.warn(f"udp: interface {iface} not found")
            iface = ""
        multicast = cfg.multicast == "true"
        host = iface if iface and not multicast and _is_address(iface) else everywhere
        self.socket = await udp_sockets(self.rt.services).bind(
            self, cfg.port, host, family, reuse=multicast
        )
        self.socket.listeners[self] = self._on_datagram
        if multicast:
            self._join(family, iface)
        if cfg.iface:
            self.status(text=f"{cfg.iface} : {iface}")
        self.log(f"udp listener at {host}:{cfg.port}")

    def _join(self, family: int, iface: str) -> None:
        assert self.socket is not None  # noqa: S101  # bound before joining
        raw = self.socket.raw
        group = self.cfg.group.strip()
        by_name = bool(iface) and not _is_address(iface)
        try:
            index = socket.if_nametoindex(iface) if by_name else 0
            if family == socket.AF_INET6:
                request = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", index)
                raw.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, request)
            else:
                local = iface if iface and not by_name else "0.0.0.0"  # noqa: S104  # default
                request = socket.inet_aton(group) + socket.inet_aton(local)
                if by_name:  # struct ip_mreqn: the interface by index (Linux)
                    request += struct.pack("@i", index)
                raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 128)
                raw.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, request)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise NeedsUserFix("Bad Multicast Address") from exc
            if exc.errno in (errno.ENODEV, errno.EADDRNOTAVAIL):
                raise NeedsUserFix("Must be ip address of the required interface") from exc
            raise NeedsUserFix(f"error: {exc.strerror or exc}") from exc

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        host, port = addr[0], addr[1]
        payload: Any = data
        if self.cfg.datatype == "base64":
            payload = base64.b64encode(data).decode()
        elif self.cfg.datatype == "utf8":
            payload = data.decode("utf-8", errors="replace")
        msg: Msg = {"payload": payload, "fromip": f"{host}:{port}", "ip": host, "port": port}
        self.send(msg)

    async def stop(self) -> None:
        if self.socket is not None:
            self.socket = None
            udp_sockets(self.rt.services).release(self)
            self.log("udp listener stopped")
