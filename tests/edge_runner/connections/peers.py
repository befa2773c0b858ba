"""Real peers on loopback for the connection tests: a pymodbus TCP server that can be stopped
and started again on the same port, and a private Mosquitto for broker outages."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _block(values: list[Any]) -> ModbusSequentialDataBlock:
    # blocks start at 1 in pymodbus 3.16 (wire address 0 is index 1)
    return ModbusSequentialDataBlock(1, values)  # type: ignore[no-untyped-call]  # untyped lib


class Plc:
    """A Modbus TCP device (unit 1) with 300 of each table, all zero except ``di`` (discrete
    inputs, fixed at construction). Tests change and inspect its memory over the protocol
    with ``write``/``read`` (a separate raw pymodbus client), like any other peer would.

    pymodbus 3.16 blocks start at 1: wire address ``a`` is block index ``a + 1``."""

    SIZE = 300

    def __init__(self, port: int | None = None, di: dict[int, bool] | None = None) -> None:
        self.port = port or free_port()
        inputs = [False] * self.SIZE
        for address, value in (di or {}).items():
            inputs[address] = value
        self.di = inputs
        self.server: ModbusTcpServer | None = None
        self.task: asyncio.Task[Any] | None = None

    def _context(self) -> ModbusServerContext:
        device = ModbusDeviceContext(
            di=_block(list(self.di)),
            co=_block([False] * self.SIZE),
            hr=_block([0] * self.SIZE),
            ir=_block([0] * self.SIZE),
        )
        return ModbusServerContext(devices={1: device}, single=False)

    async def _client(self) -> AsyncModbusTcpClient:
        client = AsyncModbusTcpClient(
            "127.0.0.1", port=self.port, timeout=2, retries=0, reconnect_delay=0
        )
        if not await client.connect():
            raise RuntimeError("cannot reach the test modbus server")
        return client

    async def write(self, table: str, address: int, values: list[int] | list[bool]) -> None:
        """Set holding registers (``hr``) or coils (``co``)."""
        client = await self._client()
        try:
            if table == "hr":
                response = await client.write_registers(address, [int(v) for v in values])
            else:
                response = await client.write_coils(address, [bool(v) for v in values])
            assert not response.isError(), response  # test helper
        finally:
            client.close()

    async def read(self, table: str, address: int, count: int) -> list[Any]:
        client = await self._client()
        try:
            if table == "hr":
                response = await client.read_holding_registers(address, count=count)
                return list(response.registers)
            response = await client.read_coils(address, count=count)
            return list(response.bits[:count])
        finally:
            client.close()

    async def start(self) -> None:
        self.server = ModbusTcpServer(self._context(), address=("127.0.0.1", self.port))
        self.task = asyncio.get_running_loop().create_task(self.server.serve_forever())
        deadline = time.monotonic() + 5
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"modbus server did not listen on {self.port}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus is untyped
            self.server = None
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None


class Mosquitto:
    """A private broker process on a free port: killed and restarted by outage tests (the
    machine's shared broker on 1883 is never touched)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5
        while not port_open(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto did not listen on {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None
