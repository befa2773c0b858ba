"""Modbus read throughput on loopback: raw pymodbus client vs the runner's modbus-read node.

    .venv/bin/python bench/bench_modbus.py [--seconds 2]

A pymodbus TCP server runs in a child process (so that server work does not share the
measured event loop). Each figure is 100 holding registers per read, one request at a time:

* raw: ``AsyncModbusTcpClient.read_holding_registers(0, count=100)`` in a loop;
* node: ``modbus-read`` reading on input (``rate`` 0) in a deployed flow, the message
  delivered to a recorder node: raw values, then 50 ``float32`` decoded with scale/offset;
* poll: five ``modbus-read`` nodes on one client at a 1 ms interval with overlapping ranges:
  polls per second and requests per poll (coalescing makes it 1).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from typing import Any

SERVER = """
import asyncio, sys
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer
async def main():
    hr = ModbusSequentialDataBlock(1, list(range(1000)))
    ctx = ModbusServerContext(devices={1: ModbusDeviceContext(hr=hr)}, single=False)
    await ModbusTcpServer(ctx, address=("127.0.0.1", int(sys.argv[1]))).serve_forever()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def raw_reads(port: int, seconds: float) -> float:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, reconnect_delay=0)
    await client.connect()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        await client.read_holding_registers(0, count=100, device_id=1)
        count += 1
    elapsed = time.perf_counter() - start
    client.close()
    return count / elapsed


def flow(port: int, **reader: Any) -> list[dict[str, Any]]:
    return [
        {"id": "t1", "type": "tab"},
        {
            "id": "mb",
            "type": "modbus-client",
            "z": "t1",
            "tcpHost": "127.0.0.1",
            "tcpPort": port,
            "unit_id": 1,
        },
        {
            "id": "r",
            "type": "modbus-read",
            "z": "t1",
            "server": "mb",
            "dataType": "HoldingRegister",
            "adr": 0,
            "quantity": 100,
            "rate": 0,
            "wires": [["cap"]],
            **reader,
        },
        {"id": "cap", "type": "bench-sink", "z": "t1", "wires": []},
    ]


async def node_reads(port: int, seconds: float, **reader: Any) -> float:
    from edge_runner.runtime.engine import Engine

    engine = Engine()
    await engine.deploy(flow(port, **reader))
    node = engine.nodes["r"].node
    await node.connection.wait_connected(5)  # type: ignore[attr-defined]  # ModbusReadNode
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        await node.on_message({"_msgid": "b", "payload": None})  # type: ignore[misc]  # async
        count += 1
    elapsed = time.perf_counter() - start
    await engine.stop()
    return count / elapsed


async def poll_rate(port: int, seconds: float) -> tuple[float, float]:
    from edge_runner.runtime.engine import Engine

    nodes = flow(port)[:2]
    for i in range(5):
        nodes.append(
            {
                "id": f"r{i}",
                "type": "modbus-read",
                "z": "t1",
                "server": "mb",
                "dataType": "HoldingRegister",
                "adr": i * 20,
                "quantity": 25,
                "rate": 1,
                "rateUnit": "ms",
                "wires": [],
            }
        )
    engine = Engine()
    await engine.deploy(nodes)
    conn = engine.nodes["mb"].node.connection  # type: ignore[attr-defined]  # ModbusClientNode
    await conn.wait_connected(5)
    await asyncio.sleep(0.2)
    poller = conn.pollers[0.001]
    polls, requests, start = poller.polls, poller.requests, time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - start
    done_polls, done_requests = poller.polls - polls, poller.requests - requests
    await engine.stop()
    return done_polls / elapsed, done_requests / max(1, done_polls)


def register_sink() -> None:
    from typing import ClassVar

    from edge_runner.contract import REGISTRY, Category, Msg, Node, NodeConfig, NodeSpec

    class Sink(Node):
        SPEC: ClassVar[NodeSpec] = NodeSpec("bench-sink", 1, Category.COMMON, 1, 0, "sink")
        Config: ClassVar[type[NodeConfig]] = NodeConfig

        def on_message(self, msg: Msg) -> None:
            return None

    if REGISTRY.get("bench-sink") is None:
        REGISTRY.add(Sink)


async def main(seconds: float) -> None:
    register_sink()
    port = free_port()
    server = subprocess.Popen(  # noqa: S603, ASYNC220  # our own interpreter; starts once
        [sys.executable, "-c", SERVER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("modbus server did not start")
            await asyncio.sleep(0.05)
        raw = await raw_reads(port, seconds)
        node = await node_reads(port, seconds)
        decoded = await node_reads(port, seconds, valueType="float32", scale=0.1, offset=1)
        raw2 = await raw_reads(port, seconds)  # again: the machine is shared, check drift
        polls, per_poll = await poll_rate(port, seconds)
    finally:
        server.terminate()
        server.wait(5)
    base = (raw + raw2) / 2
    print(f"raw pymodbus client          {raw:8.0f} reads/s  (again after: {raw2:.0f})")
    print(f"modbus-read on input (raw)   {node:8.0f} reads/s  ({node / base:.2f}x raw)")
    print(f"modbus-read float32 decoded  {decoded:8.0f} reads/s  ({decoded / base:.2f}x raw)")
    print(f"5 readers at 1 ms, one poll  {polls:8.0f} polls/s, {per_poll:.2f} request(s)/poll")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    asyncio.run(main(parser.parse_args().seconds))
