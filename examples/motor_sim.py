"""A simulated motor: a Modbus TCP server (unit 1) whose holding registers follow a motor's
vibration and current, with a fault switch to inject an anomaly.

    python -m examples.motor_sim --port 5020 [--fault-after SECONDS]

Holding registers (wire addresses, uint16):
  0  vibration velocity RMS, mm/s x 100
  1  motor current, A x 100
  10 fault switch: write 1 to make the motor misbehave (bearing damage: vibration up about 3x,
     noisier, current up), 0 to heal it

The signal model is shared with ``examples/make_motor_model.py`` so the model learns exactly
what the simulator produces in normal operation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
import time
from typing import Any

import numpy as np

VIBRATION, CURRENT, FAULT = 0, 1, 10
SCALE = 100  # registers hold value x 100
UPDATE_S = 0.05

log = logging.getLogger("motor_sim")


def motor_reading(t: float, fault: bool, rng: np.random.Generator) -> tuple[float, float]:
    """(vibration mm/s, current A) at time ``t`` seconds, rounded like the registers."""
    if fault:
        vibration = 6.5 + 1.2 * math.sin(2 * math.pi * t / 1.7) + rng.normal(0, 0.9)
        current = 13.5 + rng.normal(0, 0.8)
    else:
        vibration = 2.0 + 0.1 * math.sin(2 * math.pi * t / 20.0) + rng.normal(0, 0.12)
        current = 10.0 + 0.4 * math.sin(2 * math.pi * t / 30.0) + rng.normal(0, 0.15)
    return (round(max(vibration, 0.0), 2), round(max(current, 0.0), 2))


def registers(vibration: float, current: float) -> list[int]:
    return [min(round(vibration * SCALE), 65535), min(round(current * SCALE), 65535)]


class MotorSimulator:
    """The Modbus server plus a task that moves its registers. The task talks to the server
    over Modbus TCP like any other client (pymodbus 3.16 deprecates poking its datastore), so
    a fault written by anyone to register 10 is seen on the next update."""

    def __init__(self, port: int, seed: int = 42, fault_after: float | None = None) -> None:
        self.port = port
        self.rng = np.random.default_rng(seed)
        self.fault_after = fault_after
        self.fault = False
        self.server: Any = None
        self._tasks: list[asyncio.Task[Any]] = []

    async def _client(self) -> Any:
        from pymodbus.client import AsyncModbusTcpClient

        client = AsyncModbusTcpClient("127.0.0.1", port=self.port, timeout=2, retries=1)
        if not await client.connect():
            raise RuntimeError(f"cannot reach the simulator on {self.port}")
        return client

    async def set_fault(self, on: bool) -> None:
        client = await self._client()
        try:
            await client.write_registers(FAULT, [1 if on else 0])
        finally:
            client.close()

    async def _run(self) -> None:
        client = await self._client()
        start = time.monotonic()
        try:
            while True:
                t = time.monotonic() - start
                if self.fault_after is not None and t >= self.fault_after:
                    log.info("injecting a fault at t=%.1f s", t)
                    await client.write_registers(FAULT, [1])
                    self.fault_after = None
                response = await client.read_holding_registers(FAULT, count=1)
                if not response.isError():
                    self.fault = bool(response.registers[0])
                vibration, current = motor_reading(t, self.fault, self.rng)
                await client.write_registers(VIBRATION, registers(vibration, current))
                await asyncio.sleep(UPDATE_S)
        finally:
            client.close()

    async def start(self) -> None:
        from pymodbus.datastore import (
            ModbusDeviceContext,
            ModbusSequentialDataBlock,
            ModbusServerContext,
        )
        from pymodbus.server import ModbusTcpServer

        # blocks start at 1 in pymodbus 3.16: wire address a is block index a + 1
        block = ModbusSequentialDataBlock(1, [0] * 32)  # type: ignore[no-untyped-call]  # untyped lib
        device = ModbusDeviceContext(hr=block)
        context = ModbusServerContext(devices={1: device}, single=False)
        self.server = ModbusTcpServer(context, address=("127.0.0.1", self.port))
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.server.serve_forever())]
        deadline = time.monotonic() + 5
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"motor simulator did not listen on {self.port}") from None
                await asyncio.sleep(0.02)
                continue
            writer.close()
            break
        self._tasks.append(loop.create_task(self._run()))

    async def stop(self) -> None:
        serving, updaters = self._tasks[:1], self._tasks[1:]
        for task in updaters:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Shut the server down while serve_forever still runs: cancelling serve_forever first
        # leaves shutdown() waiting for a serving future that never completes.
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.shutdown(), 5)
            self.server = None
        for task in serving:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []


async def serve(port: int, fault_after: float | None) -> None:
    sim = MotorSimulator(port, fault_after=fault_after)
    await sim.start()
    log.info("motor simulator on 127.0.0.1:%d (fault register %d)", port, FAULT)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {port}", flush=True)  # noqa: T201  # the line scripts and tests wait for
    await stop.wait()
    await sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=5020)
    parser.add_argument(
        "--fault-after",
        type=float,
        default=None,
        help="inject the fault this many seconds after start",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # pymodbus 3.16 warns on every start that its datastore classes move in v4; the simulator
    # pins 3.16, so the notice is noise in `make run`'s output.
    logging.getLogger("pymodbus.logging").setLevel(logging.ERROR)
    asyncio.run(serve(args.port, args.fault_after))


if __name__ == "__main__":
    main()
