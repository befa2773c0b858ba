"""udp in / udp out against real datagram sockets on 127.0.0.1: datatypes, sender fields,
msg.ip/msg.port, base64, the shared socket for replies, and the warnings Node-RED gives."""

import asyncio
import base64
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from edge_runner.testing import FlowHarness


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    """A plain UDP socket on loopback playing the remote device."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)
    yield sock
    sock.close()


def udp_in(port: int, datatype: str = "buffer", **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": "in",
            "type": "udp in",
            "iface": "",
            "port": str(port),
            "ipv": "udp4",
            "multicast": "false",
            "group": "",
            "datatype": datatype,
            "wires": [["cap"]],
            **extra,
        },
        {"id": "cap", "type": "helper"},
    ]


@pytest.mark.parametrize(
    ("datatype", "expected"),
    [
        ("buffer", b"\x00\xffhi"),
        ("utf8", "\x00\ufffdhi"),
        ("base64", base64.b64encode(b"\x00\xffhi").decode()),
    ],
)
async def test_udp_in_datatypes_and_sender(
    peer: socket.socket, datatype: str, expected: Any
) -> None:
    port = free_udp_port()
    async with FlowHarness(udp_in(port, datatype, iface="127.0.0.1")) as h:
        peer.sendto(b"\x00\xffhi", ("127.0.0.1", port))
        (msg,) = await h.wait("cap", 1)
        assert h.statuses("in")[-1] == {"text": "127.0.0.1 : 127.0.0.1"}
    peer_port = peer.getsockname()[1]
    assert msg["payload"] == expected
    assert msg["ip"] == "127.0.0.1"
    assert msg["port"] == peer_port
    assert msg["fromip"] == f"127.0.0.1:{peer_port}"


async def test_udp_out_sends_payload_types_to_configured_and_msg_address(
    peer: socket.socket,
) -> None:
    address = peer.getsockname()
    flow = [
        {
            "id": "fixed",
            "type": "udp out",
            "addr": "127.0.0.1",
            "iface": "",
            "port": str(address[1]),
            "ipv": "udp4",
            "outport": "",
            "base64": False,
            "multicast": "false",
        },
        {
            "id": "open",
            "type": "udp out",
            "addr": "",
            "port": "",
            "base64": True,
            "multicast": "false",
        },
    ]
    async with FlowHarness(flow) as h:
        for payload in ("text", b"\x01\x02", 3.0, 2.5, True, {"a": 1}, [1, None, "x"]):
            h.receive("fixed", {"payload": payload})
            await asyncio.sleep(0.01)
        h.receive("open", {"payload": "aGk=", "ip": "localhost", "port": address[1]})
        received = [(await asyncio.to_thread(peer.recvfrom, 100))[0] for _ in range(8)]
    assert received == [
        b"text",
        b"\x01\x02",
        b"3",
        b"2.5",
        b"true",
        b"[object Object]",
        b"1,,x",
        b"hi",
    ]


async def test_udp_out_warns_like_node_red_when_the_destination_is_missing() -> None:
    flow = [{"id": "out", "type": "udp out", "addr": "", "port": "", "multicast": "false"}]
    async with FlowHarness(flow) as h:
        h.receive("out", {"payload": "x"})
        h.receive("out", {"payload": "x", "ip": "127.0.0.1"})
        h.receive("out", {"payload": "x", "ip": "127.0.0.1", "port": 70000})
        h.receive("out", {"topic": "no payload: ignored", "ip": "127.0.0.1", "port": 9})
        await h.until(lambda: len(h.logs(30)) >= 3, what="three warnings")
        await h.quiet(0.05)
    assert [log["msg"] for log in h.logs(30)] == [
        "udp: ip address not set",
        "udp: port not set",
        "udp: port number not valid",
    ]


async def test_reply_leaves_from_the_listening_port(peer: socket.socket) -> None:
    """udp in -> udp out with outport = the listening port answers from the same socket."""
    port = free_udp_port()
    flow = [
        *udp_in(port, "utf8"),
        {
            "id": "reply",
            "type": "udp out",
            "addr": "",
            "port": "",
            "outport": str(port),
            "multicast": "false",
        },
    ]
    flow[0]["wires"] = [["cap", "reply"]]
    async with FlowHarness(flow) as h:
        peer.sendto(b"ping", ("127.0.0.1", port))
        await h.wait("cap", 1)
        data, source = await asyncio.to_thread(peer.recvfrom, 100)
    assert data == b"ping"
    assert source == ("127.0.0.1", port)


async def test_port_in_use_by_another_process_fails_the_node_with_a_reason() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("0.0.0.0", 0))  # noqa: S104  # the node binds every interface too
        port = holder.getsockname()[1]
        async with FlowHarness(udp_in(port)) as h:
            await h.until(lambda: bool(h.statuses("in")), what="a status")
    assert h.statuses("in")[0]["fill"] == "red"
    assert f"udp: port {port} already in use" in h.statuses("in")[0]["text"]


async def test_stop_releases_the_port() -> None:
    port = free_udp_port()
    async with FlowHarness(udp_in(port)):
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("0.0.0.0", port))  # noqa: S104  # same address the node used


@pytest.mark.parametrize("iface", ["127.0.0.1", "lo"])
async def test_multicast_group_joined_on_an_interface(peer: socket.socket, iface: str) -> None:
    port = free_udp_port()
    group = "239.255.42.99"
    flow = udp_in(port, "utf8", multicast="true", group=group, iface=iface)
    peer.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    peer.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    async with FlowHarness(flow) as h:
        peer.sendto(b"to the group", (group, port))
        (msg,) = await h.wait("cap", 1)
    assert msg["payload"] == "to the group"


async def test_redeploy_binds_the_same_port_again(peer: socket.socket) -> None:
    port = free_udp_port()
    async with FlowHarness(udp_in(port, "utf8")) as h:
        changed = [dict(n) for n in h.flow]
        for node in changed:
            if node["id"] == "in":
                node["datatype"] = "base64"
        await h.engine.deploy(changed)
        assert not h.logs(20)
        peer.sendto(b"hi", ("127.0.0.1", port))
        (msg,) = await h.wait("cap", 1)
    assert msg["payload"] == "aGk="
