"""Modbus: one pymodbus client per endpoint, one poll per endpoint and cadence, and the codec.

``ModbusConnection`` serialises requests on its client (RTU needs it; on TCP it keeps one
device from being flooded by many nodes), maps pymodbus failures once (``classify`` and
``_request``) and owns ``Poller``s: every ``modbus-read`` with the same interval on the same
endpoint shares one timer, and reads of the same unit and function code that overlap or touch
are merged into one request (up to the protocol limit) whose answer is sliced per reader.

pymodbus is imported inside functions: the engine imports every node module at startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from edge_runner.connections.base import ConnectionPool, SharedConnection
from edge_runner.contract import NeedsUserFix, NodeError, NodeFailed, RetryLater, Services

log = logging.getLogger("edge_runner.connections.modbus")

# Protocol limits per request: bits for FC 1/2, registers for FC 3/4 (Modbus spec 6.1-6.4).
READ_LIMITS = {1: 2000, 2: 2000, 3: 125, 4: 125}
WRITE_LIMITS = {15: 1968, 16: 123}
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# Exception codes that mean the request itself is wrong (the user must change the node).
USER_FIX_CODES = {1, 2, 3}


@dataclass(frozen=True)
class ModbusEndpoint:
    """Where a Modbus device is: TCP host/port, or a serial line for RTU/ASCII."""

    transport: Literal["tcp", "rtu", "ascii"] = "tcp"
    host: str = "127.0.0.1"
    port: int = 502
    serial_port: str = ""
    baudrate: int = 9600
    bytesize: int = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    timeout: float = 1.0
    reconnect_min: float = 2.0
    reconnect_max: float = 30.0

    @property
    def key(self) -> str:
        if self.transport == "tcp":
            return f"tcp://{self.host}:{self.port}"
        return f"{self.transport}://{self.serial_port}"


@dataclass(frozen=True)
class ReadRequest:
    unit: int
    fc: int
    address: int
    quantity: int

    @property
    def end(self) -> int:
        return self.address + self.quantity


ReadCallback = Callable[[list[int] | list[bool] | None, NodeError | None], None]


@dataclass
class _Subscription:
    request: ReadRequest
    callback: ReadCallback


def coalesce(requests: Sequence[ReadRequest]) -> list[tuple[ReadRequest, list[ReadRequest]]]:
    """Merge reads of one unit and function code that overlap or touch, within the protocol
    limit. Returns ``(block, members)`` pairs; gaps are never read (a device may refuse them)."""
    blocks: list[tuple[ReadRequest, list[ReadRequest]]] = []
    ordered = sorted(set(requests), key=lambda r: (r.unit, r.fc, r.address, r.quantity))
    for req in ordered:
        if blocks:
            block, members = blocks[-1]
            start = block.address
            end = max(block.end, req.end)
            if (
                (block.unit, block.fc) == (req.unit, req.fc)
                and req.address <= block.end
                and end - start <= READ_LIMITS[req.fc]
            ):
                blocks[-1] = (ReadRequest(req.unit, req.fc, start, end - start), [*members, req])
                continue
        blocks.append((req, [req]))
    return blocks


@dataclass
class Poller:
    """One timer for every reader of one endpoint at one interval."""

    connection: ModbusConnection
    interval: float
    subscriptions: dict[object, _Subscription] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    polls: int = 0
    requests: int = 0

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        next_at = time.monotonic()
        while True:
            if self.connection.connected and self.subscriptions:
                await self.poll_once()
            next_at += self.interval
            now = time.monotonic()
            if next_at < now:  # a slow device: skip missed ticks instead of bursting
                next_at = now
            await asyncio.sleep(next_at - now)

    async def poll_once(self) -> None:
        self.polls += 1
        subs = list(self.subscriptions.values())
        for block, members in coalesce([s.request for s in subs]):
            self.requests += 1
            values: list[int] | list[bool] | None = None
            error: NodeError | None = None
            try:
                values = await self.connection.read(block)
            except NodeError as exc:
                error = exc
            for sub in subs:
                if sub.request not in members:
                    continue
                lo = sub.request.address - block.address
                part = values[lo : lo + sub.request.quantity] if values is not None else None
                try:
                    sub.callback(part, error)
                except Exception:  # one reader's bug must not stop the others' polls
                    log.exception("modbus poll callback failed")


class ModbusConnection(SharedConnection):
    """The shared pymodbus client of one endpoint."""

    kind = "modbus"

    def __init__(self, endpoint: ModbusEndpoint) -> None:
        super().__init__(endpoint.key, endpoint.key, endpoint.reconnect_min, endpoint.reconnect_max)
        self.endpoint = endpoint
        self.client: Any = None
        self.pollers: dict[float, Poller] = {}
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ link
    async def _connect(self) -> None:
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
        from pymodbus.framer import FramerType

        ep = self.endpoint
        if ep.transport == "tcp":
            self.client = AsyncModbusTcpClient(
                ep.host, port=ep.port, timeout=ep.timeout, retries=0, reconnect_delay=0
            )
        else:
            framer = FramerType.RTU if ep.transport == "rtu" else FramerType.ASCII
            self.client = AsyncModbusSerialClient(
                ep.serial_port,
                framer=framer,
                baudrate=ep.baudrate,
                bytesize=ep.bytesize,
                parity=ep.parity,
                stopbits=ep.stopbits,
                timeout=ep.timeout,
                retries=0,
                reconnect_delay=0,
            )
        if not await self.client.connect():
            raise RetryLater(f"cannot connect to {self.label}")

    async def _serve(self) -> None:
        await self._wait_lost(0.25, lambda: bool(self.client is not None and self.client.connected))

    async def _disconnect(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def classify(self, exc: BaseException) -> NodeError:
        from pymodbus.exceptions import ConnectionException, ModbusIOException

        if isinstance(exc, NodeError):
            return exc
        if isinstance(exc, (ConnectionException, ModbusIOException, OSError, TimeoutError)):
            return RetryLater(f"{self.label}: {exc}")
        if isinstance(exc, (ValueError, TypeError)):
            return NeedsUserFix(f"{self.label}: {exc}")
        return RetryLater(f"{self.label}: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ requests
    async def _request(self, what: str, call: Callable[[Any], Any]) -> Any:
        if not self.connected or self.client is None:
            raise RetryLater(f"{self.label} unavailable ({self.detail or 'not connected'})")
        async with self._lock:
            client = self.client
            if client is None:
                raise RetryLater(f"{self.label} unavailable")
            try:
                response = await call(client)
            except Exception as exc:
                failure = self.classify(exc)
                if isinstance(failure, RetryLater):
                    self.mark_lost(str(failure))
                raise failure from exc
        if response.isError():
            code = getattr(response, "exception_code", 0)
            name = EXCEPTION_NAMES.get(code, "error")
            text = f"{what}: device answered exception {code} ({name})"
            raise NeedsUserFix(text) if code in USER_FIX_CODES else NodeFailed(text)
        return response

    async def read(self, req: ReadRequest) -> list[int] | list[bool]:
        """Read ``req``; registers as unsigned 16-bit ints, coils/inputs as bools."""
        method = {
            1: "read_coils",
            2: "read_discrete_inputs",
            3: "read_holding_registers",
            4: "read_input_registers",
        }[req.fc]
        what = f"FC{req.fc} unit {req.unit} address {req.address} quantity {req.quantity}"
        response = await self._request(
            what, lambda c: getattr(c, method)(req.address, count=req.quantity, device_id=req.unit)
        )
        if req.fc in (1, 2):
            return [bool(b) for b in response.bits[: req.quantity]]
        return list(response.registers[: req.quantity])

    async def write(
        self, fc: int, unit: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> None:
        what = f"FC{fc} unit {unit} address {address} quantity {len(values)}"
        if fc == 5:
            await self._request(
                what, lambda c: c.write_coil(address, bool(values[0]), device_id=unit)
            )
        elif fc == 6:
            await self._request(
                what, lambda c: c.write_register(address, int(values[0]), device_id=unit)
            )
        elif fc == 15:
            await self._request(
                what, lambda c: c.write_coils(address, [bool(v) for v in values], device_id=unit)
            )
        elif fc == 16:
            await self._request(
                what, lambda c: c.write_registers(address, [int(v) for v in values], device_id=unit)
            )
        else:
            raise NeedsUserFix(f"unsupported write function code {fc}")

    # ------------------------------------------------------------------ polling
    def subscribe(
        self, owner: object, interval: float, request: ReadRequest, callback: ReadCallback
    ) -> Poller:
        """Poll ``request`` every ``interval`` seconds, sharing the timer with every other
        reader at that interval."""
        poller = self.pollers.get(interval)
        if poller is None:
            poller = self.pollers[interval] = Poller(self, interval)
        poller.subscriptions[owner] = _Subscription(request, callback)
        poller.start()
        return poller

    async def unsubscribe(self, owner: object) -> None:
        for interval, poller in list(self.pollers.items()):
            poller.subscriptions.pop(owner, None)
            if not poller.subscriptions:
                del self.pollers[interval]
                await poller.stop()

    async def close(self) -> None:
        for poller in list(self.pollers.values()):
            await poller.stop()
        self.pollers.clear()
        await super().close()


POOL_KEY = "modbus.connections"


def pool_of(services: Services) -> ConnectionPool[ModbusEndpoint, ModbusConnection]:
    """The engine's modbus connections, one per endpoint (an engine service)."""
    return services.get(POOL_KEY, lambda: ConnectionPool(ModbusConnection))


# ---------------------------------------------------------------------------------- codec

ValueType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]
Order = Literal["big", "little"]
FORMATS: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
    "float64": ("d", 4),
}


def register_count(value_type: str, length: int = 0) -> int:
    """Registers one value of ``value_type`` occupies (``length`` registers for strings)."""
    if value_type == "string":
        return max(1, length)
    return FORMATS[value_type][1]


def registers_to_bytes(registers: Sequence[int], byte_order: Order, word_order: Order) -> bytes:
    words = list(registers)[::-1] if word_order == "little" else list(registers)
    out = bytearray()
    for word in words:
        out += int(word & 0xFFFF).to_bytes(2, "little" if byte_order == "little" else "big")
    return bytes(out)


def bytes_to_registers(data: bytes, byte_order: Order, word_order: Order) -> list[int]:
    if len(data) % 2:
        data += b"\x00"
    words = [
        int.from_bytes(data[i : i + 2], "little" if byte_order == "little" else "big")
        for i in range(0, len(data), 2)
    ]
    return words[::-1] if word_order == "little" else words


def decode(
    registers: Sequence[int], value_type: str, byte_order: Order = "big", word_order: Order = "big"
) -> int | float | str:
    """One value from ``registers`` (``ABCD`` is big/big, ``CDAB`` big bytes/little words,
    ``BADC`` little bytes/big words, ``DCBA`` little/little)."""
    data = registers_to_bytes(registers, byte_order, word_order)
    if value_type == "string":
        # strings read left to right; only the byte order inside a register applies
        data = registers_to_bytes(registers, byte_order, "big")
        return data.rstrip(b"\x00").decode("utf-8", errors="replace")
    fmt, count = FORMATS[value_type]
    if len(registers) != count:
        raise NodeFailed(f"{value_type} needs {count} register(s), got {len(registers)}")
    value: int | float = struct.unpack(">" + fmt, data)[0]
    return value


def decode_all(
    registers: Sequence[int], value_type: str, byte_order: Order = "big", word_order: Order = "big"
) -> list[int | float | str]:
    """Consecutive values of one type filling ``registers`` (a trailing partial is an error)."""
    if value_type == "string":
        return [decode(registers, value_type, byte_order, word_order)]
    size = FORMATS[value_type][1]
    if len(registers) % size:
        raise NodeFailed(
            f"{len(registers)} register(s) is not a whole number of {value_type} "
            f"values ({size} register(s) each)"
        )
    return [
        decode(registers[i : i + size], value_type, byte_order, word_order)
        for i in range(0, len(registers), size)
    ]


def encode(
    value: Any,
    value_type: str,
    byte_order: Order = "big",
    word_order: Order = "big",
    length: int = 0,
) -> list[int]:
    """Registers for one value; a clear ``NodeFailed`` when it does not fit the type."""
    if value_type == "string":
        if not isinstance(value, str):
            raise NodeFailed(f"string value expected, got {type(value).__name__}")
        data = value.encode("utf-8")
        if length:
            if len(data) > 2 * length:
                raise NodeFailed(f"string of {len(data)} bytes does not fit {length} registers")
            data = data.ljust(2 * length, b"\x00")
        return bytes_to_registers(data, byte_order, "big")
    fmt, _ = FORMATS[value_type]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NodeFailed(f"number expected for {value_type}, got {value!r}")
    if fmt not in "fd":
        if value != int(value):
            raise NodeFailed(f"{value!r} is not a whole number ({value_type})")
        value = int(value)
    try:
        data = struct.pack(">" + fmt, value)
    except (struct.error, OverflowError) as exc:
        raise NodeFailed(f"{value!r} does not fit {value_type}") from exc
    return bytes_to_registers(data, byte_order, word_order)
