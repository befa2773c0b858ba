"""Two engines in one process (STYLE rule 12): each has its own flows, ``http in`` routes,
Modbus and MQTT connections and watchdog, and stops without disturbing the other. This is what
an A/B switch-over and rollback of a device's flows relies on.

Peers are real: a pymodbus server and the machine's Mosquitto on 127.0.0.1:1883. Open
connections are counted from /proc, not from our own bookkeeping."""

from __future__ import annotations

import ast
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edge_runner.connections import modbus, mqtt
from edge_runner.contract import NodeApi, new_msgid
from edge_runner.runtime.engine import Engine
from edge_runner.runtime.http_routes import handle_request, router_for
from edge_runner.runtime.services import EngineServices
from edge_runner.runtime.watchdog import watchdog_of
from edge_runner.testing import FlowHarness
from tests.edge_runner.connections.peers import Plc
from tests.edge_runner.nodes.test_modbus import client, reader
from tests.edge_runner.nodes.test_mqtt import broker, connected, mqtt_in, publish

MQTT_PORT = 1883
NODES_DIR = Path(__file__).resolve().parents[2] / "edge_runner" / "nodes"


def open_connections(remote_port: int) -> int:
    """ESTABLISHED TCP connections of this process to 127.0.0.1:``remote_port``, read from
    /proc (the kernel's view, whatever the client libraries believe)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                remote, state, inode = fields[2], fields[3], fields[9]
                if state == "01" and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                    count += inode in inodes
    return count


def device_flow(name: str, plc_port: int, topic: str) -> list[dict[str, Any]]:
    """One engine's flow: ``GET /who`` answers ``name``; a Modbus poll and an MQTT
    subscription feed recorders."""
    return [
        {"id": "who", "type": "http in", "url": "/who", "method": "get", "wires": [["set"]]},
        {
            "id": "set",
            "type": "change",
            "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": name, "tot": "str"}],
            "wires": [["answer"]],
        },
        {"id": "answer", "type": "http response", "statusCode": "", "headers": {}, "wires": []},
        client(plc_port),
        reader("poll", quantity="2", wires=[["polled"]]),
        {"id": "polled", "type": "helper"},
        broker(clientid=f"{name}-{uuid.uuid4().hex[:10]}"),
        {**mqtt_in(topic), "wires": [["heard"]]},
        {"id": "heard", "type": "helper"},
    ]


@asynccontextmanager
async def http_front(engine: Engine) -> AsyncIterator[str]:
    """An aiohttp app serving only ``engine``'s ``http in`` routes, on a free loopback port."""
    router = router_for(engine)

    async def http_node(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await handle_request(router, request, new_msgid)
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", http_node)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def get_text(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


def state_of(conn: modbus.ModbusConnection) -> str:
    return conn.state  # read afresh each time: the engines change it while the test awaits


async def settle(h: FlowHarness, predicate: Callable[[], bool], what: str) -> None:
    await h.until(predicate, 3.0, what)


@pytest.mark.slow  # a real PLC, MQTT broker and HTTP fronts: outside `make test-fast`
@pytest.mark.asyncio
async def test_two_engines_run_serve_and_stop_independently() -> None:
    plc = Plc()
    await plc.start()
    topic = f"manifold-test/two-engines/{uuid.uuid4().hex[:12]}"
    mqtt_before = open_connections(MQTT_PORT)
    a = FlowHarness(device_flow("A", plc.port, topic))
    b = FlowHarness(device_flow("B", plc.port, topic))
    try:
        await a.__aenter__()
        await b.__aenter__()
        async with (
            http_front(a.engine) as url_a,
            http_front(b.engine) as url_b,
            aiohttp.ClientSession() as session,
        ):
            await a.wait("polled", 2)
            await b.wait("polled", 2)
            await connected(a, "in")
            await connected(b, "in")

            # the same path answers differently: each engine has its own route table
            assert await get_text(session, f"{url_a}/who") == (200, "A")
            assert await get_text(session, f"{url_b}/who") == (200, "B")
            assert router_for(a.engine) is not router_for(b.engine)

            # same PLC endpoint, yet one client per engine: two sockets, two pools
            conn_a = modbus.pool_of(a.engine.services).get(a.node("mb").connection.key)  # type: ignore[attr-defined]  # ModbusClientNode
            conn_b = modbus.pool_of(b.engine.services).get(b.node("mb").connection.key)  # type: ignore[attr-defined]  # ModbusClientNode
            assert conn_a is not None
            assert conn_b is not None
            assert conn_a is not conn_b
            assert open_connections(plc.port) == 2
            assert mqtt.pool_of(a.engine.services) is not mqtt.pool_of(b.engine.services)
            assert open_connections(MQTT_PORT) == mqtt_before + 2
            assert watchdog_of(a.engine.services) is not watchdog_of(b.engine.services)

            await publish(topic, "both")
            await a.wait("heard", 1)
            await b.wait("heard", 1)

            # ---- stop A: B keeps polling, serving and receiving
            await a.__aexit__(None, None, None)
            await settle(b, lambda: open_connections(plc.port) == 1, "A's Modbus socket closed")
            await settle(
                b, lambda: open_connections(MQTT_PORT) == mqtt_before + 1, "A's MQTT socket closed"
            )
            assert state_of(conn_a) == "closed"
            assert state_of(conn_b) == "connected"
            polled_a = len(a.messages["polled"])
            polled_b = len(b.messages["polled"])
            await b.wait("polled", polled_b + 3)
            assert len(a.messages["polled"]) == polled_a
            status, _ = await get_text(session, f"{url_a}/who")
            assert status == 404  # A's routes went with A
            assert await get_text(session, f"{url_b}/who") == (200, "B")
            await publish(topic, "only B")
            heard = await b.wait("heard", 2)
            assert heard[-1]["payload"] == "only B"
            await a.quiet(0.1)
            assert [m["payload"] for m in a.messages["heard"]] == ["both"]
            print(  # measured figure
                f"\nafter stopping A: B polled {len(b.messages['polled']) - polled_b} more times"
            )

            # ---- stop B: nothing of either engine is left open
            await b.__aexit__(None, None, None)
            assert state_of(conn_b) == "closed"
            await settle(b, lambda: open_connections(plc.port) == 0, "B's Modbus socket closed")
            await settle(
                b, lambda: open_connections(MQTT_PORT) == mqtt_before, "B's MQTT socket closed"
            )
            assert len(b.engine.services) == 0
            assert len(a.engine.services) == 0
    finally:
        await a.engine.stop()
        await b.engine.stop()
        await plc.stop()


@pytest.mark.asyncio
async def test_a_node_cannot_reach_the_engine() -> None:
    flow = [{"id": "n", "type": "helper"}]
    async with FlowHarness(flow) as h:
        rt: NodeApi = h.node("n").rt
        assert not hasattr(rt, "engine")
        assert "engine" not in dir(NodeApi)
        assert rt.services is h.engine.services


def test_node_modules_use_the_node_api_only() -> None:
    """No node module imports the engine or touches an ``engine`` attribute (the import-linter
    ``layers`` contract checks imports too; this also catches ``getattr``-free reaches)."""
    offenders = []
    for path in sorted(NODES_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"engine", "_engine"}:
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                ("edge_runner.runtime.engine", "edge_runner.runtime.node_api")
            ):
                offenders.append(f"{path.name}:{node.lineno} imports {node.module}")
    assert offenders == []


@pytest.mark.asyncio
async def test_engine_services_are_made_once_and_closed_newest_first() -> None:
    closed: list[str] = []

    class Closing:
        def __init__(self, name: str) -> None:
            self.name = name

        async def close(self) -> None:
            closed.append(self.name)

    class Broken:
        def close(self) -> None:
            closed.append("broken")
            raise RuntimeError("cannot close")

    services = EngineServices()
    first = services.get("first", lambda: Closing("first"))
    assert services.get("first", lambda: Closing("other")) is first
    services.get("broken", Broken)
    services.get("last", lambda: Closing("last"))
    services.get("plain", dict)  # nothing to close
    await services.close()
    assert closed == ["last", "broken", "first"]
    assert len(services) == 0
