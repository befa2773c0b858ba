"""Real peers on loopback for the connection tests: a pymodbus TCP server that can be stopped
and started again on the same port, and a private Mosquitto for broker outages, TLS (with
certificates from ``certs.make_pki``) and password logins."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer

from tests.edge_runner.connections.certs import Pki


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
    """A private broker process on a free port, killed and restarted by outage tests (the
    machine's shared broker on 1883 is never touched). With ``persist_dir`` it keeps sessions
    and queued QoS 1 messages across a graceful restart (SIGTERM saves them)."""

    def __init__(
        self,
        port: int | None = None,
        persist_dir: Path | None = None,
        *,
        tls: Pki | None = None,
        require_certificate: bool = False,
        users: dict[str, str] | None = None,
        folder: Path | None = None,
        extra_config: tuple[str, ...] = (),
    ) -> None:
        """``tls``: a TLS-only listener with the server certificate of that PKI (client
        certificates signed by its CA are required with ``require_certificate``). ``users``:
        a password file with these accounts and no anonymous access. ``folder`` keeps the
        config, password file and the broker's log (``log_path``) for tests to read.
        ``extra_config``: more configuration lines (needs ``folder``)."""
        self.port = port or free_port()
        self.persist_dir = persist_dir
        self.tls = tls
        self.require_certificate = require_certificate
        self.users = users
        self.folder = folder
        self.extra_config = extra_config
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        assert self.folder is not None, "a broker log needs a folder"  # test helper
        return self.folder / "mosquitto.log"

    def log_lines(self, containing: str) -> list[str]:
        """Lines of the broker's log that contain ``containing``."""
        if not self.log_path.exists():
            return []
        return [ln for ln in self.log_path.read_text().splitlines() if containing in ln]

    def _secure_config(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.users else 'true'}",
            f"log_dest file {self.log_path}",
            "log_type all",
            "connection_messages true",
            f"user {getpass.getuser()}",
        ]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                f"require_certificate {'true' if self.require_certificate else 'false'}",
            ]
        if self.users:
            passwd = folder / "passwd"
            passwd.write_text("")
            passwd_binary = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            for name, secret in self.users.items():
                subprocess.run(
                    [passwd_binary, "-b", str(passwd), name, secret],
                    check=True,
                    capture_output=True,
                )
            lines.append(f"password_file {passwd}")
        lines += self.extra_config
        conf = folder / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        args = [binary, "-p", str(self.port)]
        if self.persist_dir is not None:
            self.persist_dir.mkdir(parents=True, exist_ok=True)
            conf = self.persist_dir / "mosquitto.conf"
            conf.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                f"persistence_location {self.persist_dir}/\n"
                # as root mosquitto would switch to a user that cannot write the folder
                f"user {getpass.getuser()}\n"
            )
            args = [binary, "-c", str(conf)]
        elif self.tls is not None or self.users or self.folder is not None or self.extra_config:
            assert self.folder is not None, "TLS and password brokers need a folder"
            args = [binary, "-c", str(self._secure_config(self.folder))]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not port_open(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto did not listen on {self.port}")
            time.sleep(0.02)

    def freeze(self) -> None:
        """SIGSTOP: the broker keeps its sockets but answers nothing (a half-open link)."""
        assert self.proc is not None, "the broker is not running"  # test helper
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None, "the broker is not running"  # test helper
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self, graceful: bool = False) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen broker cannot act on SIGTERM
            if graceful:
                self.proc.terminate()
            else:
                self.proc.kill()
            self.proc.wait(5)
            self.proc = None


class Subscriber:
    """An independent MQTT client (the peer a test checks against) collecting messages.

    With ``client_id`` it keeps a persistent session (clean_session False, QoS 1), so messages
    published while it was away reach it when it comes back."""

    def __init__(
        self, port: int, topic: str, client_id: str | None = None, qos: int = 1, protocol: int = 4
    ) -> None:
        self.port, self.topic, self.client_id, self.qos = port, topic, client_id, qos
        self.protocol = protocol
        self.messages: list[Any] = []
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def _run(self) -> None:
        import aiomqtt

        version = aiomqtt.ProtocolVersion.V5 if self.protocol == 5 else aiomqtt.ProtocolVersion.V311
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier=self.client_id,
                    clean_session=False if self.client_id and self.protocol != 5 else None,
                    protocol=version,
                ) as client:
                    await client.subscribe(self.topic, self.qos)
                    self.ready.set()
                    async for message in client.messages:
                        self.messages.append(message)
            except aiomqtt.MqttError:
                self.ready.clear()
                await asyncio.sleep(0.05)

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        async with asyncio.timeout(5):
            await self.ready.wait()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    def payloads(self) -> list[bytes]:
        return [bytes(m.payload) for m in self.messages]

    def distinct(self) -> list[bytes]:
        """Payloads in first-arrival order without the broker's QoS 1 redeliveries (a
        persistent session re-sends what it had not recorded as acknowledged)."""
        return list(dict.fromkeys(self.payloads()))

    async def wait_distinct(self, count: int, within: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + within
        while len(self.distinct()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {len(self.distinct())} of {count}: {self.payloads()}")
            await asyncio.sleep(0.02)
        return self.distinct()

    async def wait(self, count: int, within: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + within
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {len(self.messages)} of {count}: {self.payloads()}")
            await asyncio.sleep(0.02)
        return self.payloads()


class SubscriberProcess(Subscriber):
    """``Subscriber``'s checks against a ``mosquitto_sub`` process writing one payload a line to
    ``output``: receiving a burst costs the test's event loop nothing, so loop-lag figures
    taken meanwhile are the runner's own. Payloads must not contain newlines."""

    PROBE = b"subscriber-ready"

    def __init__(self, port: int, topic: str, client_id: str, output: Path, qos: int = 1) -> None:
        super().__init__(port, topic, client_id, qos)
        self.output = output
        self.proc: asyncio.subprocess.Process | None = None

    def _lines(self) -> list[bytes]:
        return self.output.read_bytes().split(b"\n")[:-1] if self.output.exists() else []

    async def start(self) -> None:
        import aiomqtt

        binary = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
        out = os.open(self.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *(binary, "-h", "127.0.0.1", "-p", str(self.port), "-t", self.topic),
                *("-q", str(self.qos), "-i", str(self.client_id), "-c"),
                stdout=out,
            )
        finally:
            os.close(out)
        deadline = time.monotonic() + 5
        async with aiomqtt.Client("127.0.0.1", self.port) as probe:
            while self.PROBE not in self._lines():  # subscribed once a probe comes back
                if time.monotonic() > deadline:
                    raise RuntimeError("mosquitto_sub did not subscribe")
                await probe.publish(self.topic, self.PROBE, qos=1)
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            await self.proc.wait()
            self.proc = None

    def payloads(self) -> list[bytes]:
        return [line for line in self._lines() if line != self.PROBE]
