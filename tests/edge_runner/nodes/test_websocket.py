"""websocket in/out with websocket-listener (served on the runner's own port by the real
server) and websocket-client (against a real aiohttp websocket server), all on 127.0.0.1:
payload vs whole message, several clients, _session replies, broadcast, status counts,
client reconnection, headers and subprotocols, refused paths."""

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edge_runner.testing import FlowHarness
from tests.edge_runner.connections.certs import make_pki
from tests.edge_runner.nodes.test_http_in import serving


@asynccontextmanager
async def serving_ws(
    flow: list[dict[str, Any]], userdir: Path
) -> AsyncIterator[tuple[FlowHarness, aiohttp.ClientSession, str]]:
    """``serving`` of the http in tests, with the ws:// base URL."""
    async with serving(flow, userdir) as (h, client, base):
        yield h, client, base.replace("http://", "ws://", 1)


def listener_flow(wholemsg: str = "false", path: str = "/ws/data") -> list[dict[str, Any]]:
    """listener <- websocket in -> helper "got"; websocket out "out" on the same listener."""
    return [
        {"id": "lst", "type": "websocket-listener", "path": path, "wholemsg": wholemsg},
        {"id": "in", "type": "websocket in", "server": "lst", "client": "", "wires": [["got"]]},
        {"id": "got", "type": "helper"},
        {"id": "out", "type": "websocket out", "server": "lst", "client": ""},
    ]


async def test_listener_payloads_sessions_replies_and_broadcast(tmp_path: Path) -> None:
    async with serving_ws(listener_flow(), tmp_path) as (h, client, base):
        alice = await client.ws_connect(f"{base}/ws/data")
        bob = await client.ws_connect(f"{base}/ws/data")
        await h.until(lambda: h.statuses("in")[-1]["text"] == "connected 2", what="2 clients")
        await alice.send_str("hello")
        await bob.send_bytes(b"\x00\x01")
        first, second = await h.wait("got", 2)
        assert first["payload"] == "hello"
        assert second["payload"] == b"\x00\x01"
        assert first["_session"]["type"] == "websocket"
        assert first["_session"]["id"] != second["_session"]["id"]

        h.receive("out", {"payload": "just alice", "_session": first["_session"]})
        assert await alice.receive_str(timeout=3) == "just alice"
        h.receive("out", {"payload": {"to": "all"}})
        h.receive("out", {"payload": ""})  # nothing, like Node-RED
        h.receive("out", {"payload": b"\xff"})
        for ws in (alice, bob):
            assert await ws.receive_str(timeout=3) == '{"to":"all"}'
            assert await ws.receive_bytes(timeout=3) == b"\xff"
        await alice.close()
        await h.until(lambda: h.statuses("out")[-1]["text"] == "connected 1", what="1 client")
        h.receive("out", {"payload": "late", "_session": first["_session"]})  # gone: dropped
        await bob.close()
        await h.until(
            lambda: (
                h.statuses("in")[-1] == {"fill": "red", "shape": "ring", "text": "disconnected"}
            ),
            what="no client left",
        )
    assert not h.logs(30)  # a reply to a closed session is not a warning


async def test_listener_whole_message_both_ways(tmp_path: Path) -> None:
    async with serving_ws(listener_flow("true", "ws/whole"), tmp_path) as (h, client, base):
        ws = await client.ws_connect(f"{base}/ws/whole")
        await ws.send_str('{"payload": [1, 2], "topic": "t"}')
        await ws.send_str("42")
        await ws.send_str("not json")
        await ws.send_str("[1, null]")
        await ws.send_str("null")
        await ws.send_bytes(b"\x01\x02")
        await ws.send_bytes(b'{"payload": "binary JSON"}')
        msgs = await h.wait("got", 7)
        assert msgs[0]["topic"] == "t"
        assert msgs[0]["payload"] == [1, 2]
        assert [m["payload"] for m in msgs[1:]] == [
            42,
            "not json",
            [1, None],
            None,
            b"\x01\x02",
            "binary JSON",
        ]
        h.receive("out", {"payload": b"\x01", "topic": "x", "_session": msgs[0]["_session"]})
        sent = json.loads(await ws.receive_str(timeout=3))
        await ws.close()
    assert sent.pop("_msgid")  # the whole message, as Node-RED sends it
    assert sent == {"payload": {"type": "Buffer", "data": [1]}, "topic": "x"}


async def test_plain_requests_to_a_listener_path_are_not_upgrades(tmp_path: Path) -> None:
    async with serving_ws(listener_flow(), tmp_path) as (_h, client, base):
        async with client.get(base.replace("ws://", "http://") + "/ws/data") as response:
            assert response.status == 404
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(f"{base}/ws/other")  # no listener there
        assert refused.value.status == 404


async def test_two_listeners_on_one_path_and_a_missing_endpoint_are_refused(tmp_path: Path) -> None:
    flow = [
        *listener_flow(),
        {"id": "dup", "type": "websocket-listener", "path": "ws/data", "wholemsg": "false"},
        {"id": "nothing", "type": "websocket in", "server": "", "client": ""},
    ]
    async with FlowHarness(flow) as h:
        pass
    errors = {log["msg"] for log in h.logs(20)}
    # whichever of the two starts second is refused (its path as written)
    duplicate = "failed to start: Cannot have two WebSocket listeners on the same path: "
    assert len([m for m in errors if m.startswith(duplicate)]) == 1
    assert errors & {duplicate + "ws/data", duplicate + "/ws/data"}
    assert "failed to start: Missing server configuration" in errors


class Feed:
    """A websocket server for the client node: echoes, records the upgrade headers and
    subprotocol, and can drop every connection."""

    def __init__(self) -> None:
        self.connections: list[web.WebSocketResponse] = []
        self.headers: list[dict[str, str]] = []
        self.received: list[Any] = []
        self.changed = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=["mqtt", "json"])
        await ws.prepare(request)
        self.headers.append(dict(request.headers))
        self.connections.append(ws)
        self.changed.set()
        async for message in ws:
            self.received.append(message.data)
            self.changed.set()
        return ws

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/feed", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def until(self, predicate: Any) -> None:
        async with asyncio.timeout(5):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def test_client_sends_receives_and_reconnects(monkeypatch: Any) -> None:
    monkeypatch.setenv("FEED_TOKEN", "s3cret")
    feed = Feed()
    await feed.start()
    assert feed.runner is not None
    flow = [
        {
            "id": "cli",
            "type": "websocket-client",
            "path": f"ws://127.0.0.1:{feed.port}/feed",
            "tls": "",
            "wholemsg": "false",
            "hb": "",
            "subprotocol": "json, other",
            "headers": [
                {
                    "keyType": "other",
                    "keyValue": "X-Token",
                    "valueType": "env",
                    "valueValue": "FEED_TOKEN",
                },
                {
                    "keyType": "User-Agent",
                    "keyValue": "",
                    "valueType": "other",
                    "valueValue": "manifold-test",
                },
            ],
        },
        {"id": "in", "type": "websocket in", "server": "", "client": "cli", "wires": [["got"]]},
        {"id": "got", "type": "helper"},
        {"id": "out", "type": "websocket out", "server": "", "client": "cli"},
    ]
    try:
        async with FlowHarness(flow) as h:
            await feed.until(lambda: len(feed.connections) == 1)
            await h.until(lambda: h.statuses("out")[-1:] == [_connected], what="connected")
            assert feed.headers[0]["X-Token"] == "s3cret"
            assert feed.headers[0]["User-Agent"] == "manifold-test"
            assert feed.connections[0].ws_protocol == "json"
            await feed.connections[0].send_str("from the server")
            (msg,) = await h.wait("got", 1)
            assert msg["payload"] == "from the server"
            h.receive("out", {"payload": 7})
            await feed.until(lambda: feed.received == ["7"])

            await feed.connections[0].close()  # the server drops the client
            await h.until(
                lambda: (
                    {"fill": "red", "shape": "ring", "text": "disconnected"} in h.statuses("in")
                ),
                what="disconnected",
            )
            await feed.until(lambda: len(feed.connections) == 2)
            await h.until(lambda: h.statuses("in")[-1:] == [_connected], what="reconnected")
            h.receive("out", {"payload": "again"})
            await feed.until(lambda: feed.received == ["7", "again"])
    finally:
        await feed.runner.cleanup()


_connected = {"fill": "green", "shape": "dot", "text": "connected "}  # Node-RED's own text


async def test_client_to_a_dead_server_shows_error_and_warns_on_send() -> None:
    feed = Feed()
    await feed.start()
    assert feed.runner is not None
    port = feed.port
    await feed.runner.cleanup()  # nothing listens there any more
    flow = [
        {"id": "cli", "type": "websocket-client", "path": f"ws://127.0.0.1:{port}/feed"},
        {"id": "out", "type": "websocket out", "server": "", "client": "cli"},
    ]
    async with FlowHarness(flow) as h:
        await h.until(lambda: bool(h.statuses("out")), what="a status")
        assert h.statuses("out")[0] == {"fill": "red", "shape": "ring", "text": "error"}
        h.receive("out", {"payload": "lost"})
        await h.until(lambda: bool(h.logs(30)), what="a warning")
    assert h.logs(30)[0]["msg"].startswith("An error occurred while sending:")


async def test_wss_client_trusts_the_ca_of_its_tls_config(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    feed = Feed()
    app = web.Application()
    app.router.add_get("/feed", feed.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    port = runner.addresses[0][1]
    flow = [
        {
            "id": "cli",
            "type": "websocket-client",
            "path": f"wss://127.0.0.1:{port}/feed",
            "tls": "tls",
        },
        {"id": "tls", "type": "tls-config", "ca": str(pki.ca), "verifyservercert": True},
        {"id": "out", "type": "websocket out", "server": "", "client": "cli"},
    ]
    try:
        async with FlowHarness(flow) as h:
            await feed.until(lambda: len(feed.connections) == 1)
            await h.until(lambda: h.statuses("out")[-1:] == [_connected], what="connected")
            h.receive("out", {"payload": "over tls"})
            await feed.until(lambda: feed.received == ["over tls"])
    finally:
        await runner.cleanup()
