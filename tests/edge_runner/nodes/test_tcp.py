"""tcp in / tcp out / tcp request against real asyncio stream peers on 127.0.0.1: server and
client modes, stream/single, delimiters, datatypes, msg._session replies, reconnection after
the peer drops or restarts, and every tcp request return mode."""

import asyncio
import base64
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from edge_runner.testing import FlowHarness
from tests.edge_runner.connections.certs import Pki, make_pki


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tcp_in(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": "in",
        "type": "tcp in",
        "server": "server",
        "host": "127.0.0.1",
        "port": str(port),
        "datamode": "stream",
        "datatype": "buffer",
        "newline": "",
        "topic": "t",
        "trim": False,
        "base64": False,
        "tls": "",
        "wires": [["cap"]],
        **extra,
    }


CAPTURE = {"id": "cap", "type": "helper"}


class Peer:
    """A loopback TCP server playing the remote device: records what arrives per connection
    and can write to, drop or stop its connections."""

    def __init__(self, answer: Any = None) -> None:
        self.answer = answer  # called with (data, writer) for every chunk
        self.received = bytearray()
        self.writers: list[asyncio.StreamWriter] = []
        self.handlers: list[asyncio.Task[None]] = []
        self.accepted = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.changed = asyncio.Event()

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.handlers.append(asyncio.current_task())  # type: ignore[arg-type]  # in a task
        self.writers.append(writer)
        self.changed.set()
        while chunk := await reader.read(1024):
            self.received += chunk
            self.changed.set()
            if self.answer is not None:
                self.answer(chunk, writer)
        writer.close()

    async def wait(self, predicate: Any, what: str) -> None:
        async with asyncio.timeout(5):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        self.writers.clear()
        self.handlers.clear()


@asynccontextmanager
async def peer(answer: Any = None, port: int = 0) -> AsyncIterator[Peer]:
    found = Peer(answer)
    await found.start(port)
    try:
        yield found
    finally:
        await found.stop()


# --------------------------------------------------------------------------- tcp in server


async def test_server_stream_of_buffers_with_peer_and_session() -> None:
    port = free_port()
    async with FlowHarness([tcp_in(port), CAPTURE]) as h:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        await h.until(lambda: {"text": "1 connection"} in h.statuses("in"), what="1 connection")
        writer.write(b"\x01\x02")
        (msg,) = await h.wait("cap", 1)
        writer.close()
        await h.until(lambda: h.statuses("in")[-1] == {"text": "0 connections"}, what="0")
    assert msg["payload"] == b"\x01\x02"
    assert msg["topic"] == "t"
    assert msg["ip"] == "127.0.0.1"
    assert msg["port"] == writer.get_extra_info("sockname")[1]
    assert msg["_session"]["type"] == "tcp"
    assert len(msg["_session"]["id"]) == 16


async def test_server_utf8_split_on_escaped_delimiter_keeps_it_with_trim() -> None:
    port = free_port()
    flow = [tcp_in(port, datatype="utf8", newline="\\n", trim=True), CAPTURE]
    async with FlowHarness(flow) as h:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        # a two-byte character split across writes must not be mangled
        writer.write(b"one\ntw\xc3")
        await writer.drain()
        await h.wait("cap", 1)
        writer.write(b"\xa9o\nthr")
        await writer.drain()
        await h.wait("cap", 2)
        writer.write(b"ee")
        writer.close()  # the rest is sent when the peer closes
        msgs = await h.wait("cap", 3)
    assert [m["payload"] for m in msgs] == ["one\n", "tw\u00e9o\n", "three"]


async def test_server_single_message_per_connection_as_base64() -> None:
    port = free_port()
    flow = [tcp_in(port, datamode="single", datatype="base64"), CAPTURE]
    async with FlowHarness(flow) as h:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for part in (b"ab", b"cd", b"\xff"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)
        await h.quiet(0.05)
        assert "cap" not in h.messages  # nothing before the connection ends
        writer.close()
        (msg,) = await h.wait("cap", 1)
    assert msg["payload"] == base64.b64encode(b"abcd\xff").decode()


async def test_reply_answers_only_the_session_it_came_from() -> None:
    port = free_port()
    flow = [
        tcp_in(port, datatype="utf8", newline="\\n"),
        {"id": "cap", "type": "helper", "wires": [["reply"]]},
        {"id": "reply", "type": "tcp out", "beserver": "reply", "host": "", "port": ""},
    ]
    async with FlowHarness(flow) as h:
        alice_r, alice_w = await asyncio.open_connection("127.0.0.1", port)
        bob_r, bob_w = await asyncio.open_connection("127.0.0.1", port)
        alice_w.write(b"from alice\n")
        assert await asyncio.wait_for(alice_r.readexactly(10), 3) == b"from alice"
        bob_w.write(b"bob\n")
        assert await asyncio.wait_for(bob_r.readexactly(3), 3) == b"bob"
        # without _session every open tcp in connection gets it; reset closes them
        h.receive("reply", {"payload": "all"})
        assert await asyncio.wait_for(alice_r.readexactly(3), 3) == b"all"
        assert await asyncio.wait_for(bob_r.readexactly(3), 3) == b"all"
        h.receive("reply", {"reset": True, "_session": h.messages["cap"][0]["_session"]})
        assert await asyncio.wait_for(alice_r.read(), 3) == b""
        alice_w.close()
        bob_w.close()


async def test_listening_port_taken_fails_with_node_red_words() -> None:
    async with peer() as taken, FlowHarness([tcp_in(taken.port), CAPTURE]) as h:
        pass
    status = h.statuses("in")[0]
    assert status["fill"] == "red"
    assert status["text"].startswith(f"unable to listen on port {taken.port}, error: Error")
    (error,) = h.logs(20)
    assert error["msg"] == (
        f"failed to start: unable to listen on port {taken.port}, "
        "error: Error: listen EADDRINUSE: address already in use"
    )


# --------------------------------------------------------------------------- tcp in client


async def test_client_receives_and_reconnects_after_drop_and_restart() -> None:
    async with peer() as device:
        flow = [tcp_in(device.port, server="client", datatype="utf8"), CAPTURE]
        async with FlowHarness(flow) as h:
            await device.wait(lambda: device.accepted == 1, "first connection")
            await h.until(lambda: h.statuses("in")[-1:] == [_connected], what="connected")
            device.writers[0].write(b"hello")
            (msg,) = await h.wait("cap", 1)
            assert msg["payload"] == "hello"
            assert msg["_session"]["type"] == "tcp"
            assert "ip" not in msg
            device.writers[0].close()  # the device drops the connection
            await device.wait(lambda: device.accepted == 2, "reconnection")
            port = device.port
            await device.stop()
            await h.until(
                lambda: h.statuses("in")[-1]["text"] == "disconnected", what="disconnected"
            )
            await device.start(port)  # the device comes back on the same port
            await device.wait(lambda: device.accepted == 3, "reconnection after restart")
            await h.until(lambda: h.statuses("in")[-1:] == [_connected], what="connected again")
    texts = [s.get("text") for s in h.statuses("in")]
    assert texts[:2] == ["connecting", "connected"]
    assert "disconnected" in texts


_connected = {"fill": "green", "shape": "dot", "text": "connected"}


# --------------------------------------------------------------------------------- tcp out


async def test_client_writes_payloads_and_end_reconnects() -> None:
    async with peer() as device:
        flow = [
            {
                "id": "out",
                "type": "tcp out",
                "host": "127.0.0.1",
                "port": str(device.port),
                "beserver": "client",
                "base64": True,
                "end": False,
            },
            {
                "id": "once",
                "type": "tcp out",
                "host": "127.0.0.1",
                "port": str(device.port),
                "beserver": "client",
                "base64": False,
                "end": True,
            },
        ]
        async with FlowHarness(flow) as h:
            await device.wait(lambda: device.accepted == 2, "two connections")
            await h.until(lambda: h.statuses("once")[-1:] == [_connected], what="connected")
            h.receive("out", {"payload": base64.b64encode(b"raw").decode()})
            h.receive("out", {"payload": 1.0})
            h.receive("out", {"payload": None})
            h.receive("out", {"payload": b"|"})
            await device.wait(lambda: bytes(device.received) == b"raw1|", "writes")
            h.receive("once", {"payload": {"a": 1}})
            await device.wait(lambda: device.accepted == 3, "quick reconnection after end")
    assert bytes(device.received) == b"raw1|[object Object]"


async def test_server_writes_to_every_client() -> None:
    port = free_port()
    flow = [{"id": "out", "type": "tcp out", "host": "", "port": port, "beserver": "server"}]
    async with FlowHarness(flow) as h:
        assert h.statuses("out")[0] == {"text": "0 connections"}
        clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await h.until(lambda: h.statuses("out")[-1] == {"text": "2 connections"}, what="2")
        h.receive("out", {"payload": "news"})
        for reader, writer in clients:
            assert await asyncio.wait_for(reader.readexactly(4), 3) == b"news"
            writer.close()


# ----------------------------------------------------------------------------- tcp request


def request(port: int, out: str, splitc: str, ret: str = "buffer", **extra: Any) -> list[Any]:
    return [
        {
            "id": "req",
            "type": "tcp request",
            "server": "127.0.0.1",
            "port": str(port),
            "out": out,
            "ret": ret,
            "splitc": splitc,
            "newline": "",
            "trim": False,
            "tls": "",
            "wires": [["cap"]],
            **extra,
        },
        CAPTURE,
    ]


def answer_in_pieces(*pieces: bytes) -> Any:
    """A device answering every request with ``pieces``, one write each."""

    def answer(_data: bytes, writer: asyncio.StreamWriter) -> None:
        for piece in pieces:
            writer.write(piece)

    return answer


@pytest.mark.parametrize(
    ("out", "splitc", "expected"),
    [
        ("count", "5", b"AB\nCD"),
        ("char", "\\n", b"AB\n"),
        ("char", "0x45", b"AB\nCDE"),
        ("char", "F", b"AB\nCDEF"),
        ("time", "150", b"AB\nCDEF"),
    ],
)
async def test_request_return_modes(out: str, splitc: str, expected: bytes) -> None:
    async with (
        peer(answer_in_pieces(b"AB\nC", b"DEF")) as device,
        FlowHarness(request(device.port, out, splitc)) as h,
    ):
        h.receive("req", {"payload": "ask", "topic": "kept"})
        (msg,) = await h.wait("cap", 1)
        await h.quiet(0.2)
        assert len(h.messages["cap"]) == 1
        await h.until(lambda: h.statuses("req")[-1] == {}, what="status cleared")
    assert msg["payload"] == expected
    assert msg["topic"] == "kept"
    assert bytes(device.received) == b"ask"


async def test_request_sit_stays_connected_and_splits_strings() -> None:
    async with peer(answer_in_pieces(b"a|b", b"|c")) as device:
        flow = request(device.port, "sit", " ", ret="string", newline="|")
        async with FlowHarness(flow) as h:
            h.receive("req", {"payload": "1"})
            await h.wait("cap", 2)
            h.receive("req", {"payload": 2})
            msgs = await h.wait("cap", 4)
            assert device.accepted == 1  # one connection for both requests
            h.receive("req", {"reset": True})
            await h.until(
                lambda: (
                    h.statuses("req")[-1]
                    == {"fill": "green", "shape": "ring", "text": "0 connections"}
                ),
                what="reset",
            )
    # "c" waits for its delimiter and starts the next answer
    assert [m["payload"] for m in msgs] == ["a", "b", "ca", "b"]
    assert bytes(device.received) == b"12"


async def test_request_immediate_writes_and_closes_without_output() -> None:
    async with peer() as device:
        async with FlowHarness(request(device.port, "immed", " ")) as h:
            h.receive("req", {"payload": "fire"})
            await device.wait(lambda: bytes(device.received) == b"fire", "write")
            await h.quiet(0.1)
        assert "cap" not in h.messages


async def test_request_connection_refused_is_a_catchable_error() -> None:
    port = free_port()
    flow = [
        *request(port, "count", "1"),
        {"id": "catch", "type": "catch", "scope": None, "uncaught": False, "wires": [["got"]]},
        {"id": "got", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("req", {"payload": "x", "topic": "mine"})
        (caught,) = await h.wait("got", 1)
        assert h.statuses("req")[-1] == {"fill": "red", "shape": "ring", "text": "error"}
    assert caught["topic"] == "mine"
    assert caught["error"]["message"].startswith(f"connect failed 127.0.0.1:{port}")


async def test_request_without_destination_warns() -> None:
    async with FlowHarness(request(0, "count", "1", server="")) as h:
        h.receive("req", {"payload": "x"})
        await h.until(lambda: bool(h.logs(30)), what="a warning")
    assert h.logs(30)[0]["msg"] == "Host and/or port not set"


async def test_redeploy_listens_again_on_the_same_port_and_drops_old_connections() -> None:
    port = free_port()
    first = [{"id": "t1", "type": "tab", "label": "t"}, {**tcp_in(port), "z": "t1"}, CAPTURE]
    async with FlowHarness(first) as h:
        old_reader, old_writer = await asyncio.open_connection("127.0.0.1", port)
        await h.until(lambda: {"text": "1 connection"} in h.statuses("in"), what="connected")
        changed = [dict(n) for n in h.flow]
        changed[1] = {**changed[1], "topic": "after"}
        await h.engine.deploy(changed)
        assert await asyncio.wait_for(old_reader.read(), 3) == b""  # closed by the old node
        old_writer.close()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        (msg,) = await h.wait("cap", 1)
        writer.close()
    assert msg["topic"] == "after"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_request_over_tls_trusts_the_tls_config_ca_only(pki: Pki) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"secret:" + await reader.read(100))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        for ca, expect_answer in ((pki.ca, True), (pki.other_ca, False)):
            flow = [
                *request(port, "time", "100", ret="string", tls="tls"),
                {"id": "tls", "type": "tls-config", "ca": str(ca), "verifyservercert": True},
            ]
            async with FlowHarness(flow) as h:
                h.receive("req", {"payload": "ping"})
                if expect_answer:
                    (msg,) = await h.wait("cap", 1)
                    assert msg["payload"] == "secret:ping"
                else:
                    await h.until(lambda: bool(h.logs(20)), what="an error")
                    assert "certificate verify failed" in h.logs(20)[0]["msg"]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_host_that_is_not_this_machine_fails_with_how_to_fix_it() -> None:
    # 192.0.2.1 is TEST-NET-1: never an address of this machine
    flow = [tcp_in(free_port(), host="192.0.2.1"), CAPTURE]
    async with FlowHarness(flow) as h:
        pass
    (error,) = h.logs(20)
    assert "listen EADDRNOTAVAIL" in error["msg"]
    assert "clear it to listen on every interface, as Node-RED does" in error["msg"]
