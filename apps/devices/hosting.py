"""Runners the platform starts itself (hosted instances) behind one driver interface.

``HostingDriver`` is what the reconciler (``manage.py hosted_runners``) needs of a place that
runs runners: start one from an ``InstanceSpec``, stop it, say how it is, show its logs, list
what it holds. ``LocalProcessDriver`` runs each instance as an ``edge-runner run`` process on
this host; a container or Kubernetes driver implements the same methods. The driver knows no
database: the reconciler turns rows into specs, and the one thing a driver needs from the
platform at start (a fresh registration code, only when its data directory holds no identity
yet) is a callable in the spec.

Local layout, one directory per instance (0700), named by the device id:

    <VAR_DIR>/hosted/<device id>/data/        the runner's data directory (0700)
    <VAR_DIR>/hosted/<device id>/runner.pid   {"pid", "start_ticks", ...}: adopt after a restart
    <VAR_DIR>/hosted/<device id>/runner.log   the runner's output (copy-truncated past 5 MiB)

Processes run as the platform's user in their own session (a reconciler restart does not stop
them; the next reconciler adopts them through the pid file, checking the kernel's start time
so a recycled pid is never mistaken for a runner). Their engine and status page bind loopback
only, and they get a minimal environment: none of the platform's MANIFOLD_* secrets.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol

from apps.core.errors import Conflict

DEFAULT_PORTS: Final = "18800-18899"
REGISTER_TIMEOUT_SECONDS: Final = 30.0
STOP_GRACE_SECONDS: Final = 5.0
LOG_MAX_BYTES: Final = 5 * 1024 * 1024
LOG_KEEP_BYTES: Final = 1024 * 1024
MAX_LOG_LINES: Final = 1000
# The agent CLI reads the registration token from here (never on the command line: `ps` shows it).
TOKEN_ENV: Final = "EDGE_RUNNER_REGISTRATION_TOKEN"  # noqa: S105  # the name of a variable
# What a hosted process inherits from the platform's environment; nothing else.
_INHERITED_ENV: Final = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")

State = Literal["running", "stopped", "exited"]


class HostingError(Exception):
    """A driver could not do what it was asked; the message says why (shown to the user)."""


class PortsExhausted(Conflict):
    code = "ports_exhausted"


@dataclass(frozen=True)
class InstanceSpec:
    """What a driver needs to start one instance."""

    instance_id: str  # str(device.pk)
    name: str
    platform_url: str
    port: int  # the engine's loopback port
    status_port: int  # the status page's loopback port
    registration_code: Callable[[], str]  # issues a fresh code; called only to register


@dataclass(frozen=True)
class InstanceStatus:
    state: State
    pid: int | None = None
    exit_code: int | None = None
    started_at: float | None = None  # wall clock
    detail: str = ""


class HostingDriver(Protocol):
    """Where hosted runners run. Instances are named by their device id (a string)."""

    def start(self, spec: InstanceSpec) -> InstanceStatus: ...

    def stop(self, instance: str) -> None: ...

    def status(self, instance: str) -> InstanceStatus: ...

    def logs(self, instance: str, lines: int = 100) -> list[str]: ...

    def instances(self) -> list[str]:
        """Every instance this driver holds a process or leftover state for."""
        ...

    def discard(self, instance: str) -> None:
        """Stop it and delete its data (its device is gone)."""
        ...


# --- ports ------------------------------------------------------------------------------------


def parse_port_range(text: str) -> range:
    """``"18800-18899"`` as a range (both ends included); a clear ValueError otherwise."""
    low, sep, high = text.strip().partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise ValueError(
            f"MANIFOLD_HOSTED_PORTS must look like 18800-18899, got {text!r}"
        ) from None
    if not 1024 <= first <= last <= 65535:
        raise ValueError(f"MANIFOLD_HOSTED_PORTS must be within 1024-65535, got {text!r}")
    return range(first, last + 1)


def allocate_ports(taken: set[int], ports: range) -> tuple[int, int]:
    """The lowest free pair (engine, status page) of ``ports`` not in ``taken``."""
    free = (port for port in ports if port not in taken)
    pair = [port for _, port in zip(range(2), free, strict=False)]
    if len(pair) < 2:
        raise PortsExhausted(
            f"No free ports left for a hosted instance in MANIFOLD_HOSTED_PORTS "
            f"({ports.start}-{ports.stop - 1}, two per instance, {len(taken)} in use): "
            "delete an instance or widen the range."
        )
    return pair[0], pair[1]


def loopback_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- processes --------------------------------------------------------------------------------


def process_start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    # Field 22 of the whole line; fields[0] here is field 3 (the state).
    if len(fields) < 20 or fields[0] == "Z":
        return None
    return int(fields[19])


@dataclass
class _Process:
    pid: int
    start_ticks: int
    started_at: float
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)  # None: adopted

    def exit_code(self) -> tuple[bool, int | None]:
        """(exited, code); an adopted process's code is unknown."""
        if self.popen is not None:
            code = self.popen.poll()
            return code is not None, code
        return process_start_ticks(self.pid) != self.start_ticks, None


def default_command() -> list[str]:
    return [sys.executable, "-m", "edge_runner"]


class LocalProcessDriver:
    """One ``edge-runner run`` process per instance under ``root`` (``<VAR_DIR>/hosted``)."""

    def __init__(
        self,
        root: Path,
        command: Sequence[str] | None = None,
        *,
        cwd: Path | None = None,
        grace_seconds: float = STOP_GRACE_SECONDS,
    ) -> None:
        self.root = Path(root)
        self.command = list(command) if command is not None else default_command()
        self.cwd = cwd
        self.grace_seconds = grace_seconds
        self._processes: dict[str, _Process] = {}

    # --- paths

    def directory(self, instance: str) -> Path:
        if not instance.isdigit():
            raise ValueError(f"instance ids are device ids, got {instance!r}")
        return self.root / instance

    def data_dir(self, instance: str) -> Path:
        return self.directory(instance) / "data"

    def _pid_file(self, instance: str) -> Path:
        return self.directory(instance) / "runner.pid"

    def _log_file(self, instance: str) -> Path:
        return self.directory(instance) / "runner.log"

    def registered(self, instance: str) -> bool:
        return (self.data_dir(instance) / "device" / "identity.json").exists()

    # --- the interface

    def start(self, spec: InstanceSpec) -> InstanceStatus:
        current = self.status(spec.instance_id)
        if current.state == "running":
            return current
        self._processes.pop(spec.instance_id, None)
        for port in (spec.port, spec.status_port):
            if not loopback_port_free(port):
                raise HostingError(f"Port {port} on 127.0.0.1 is in use by another process.")
        data = self.data_dir(spec.instance_id)
        for directory in (self.root, self.directory(spec.instance_id), data):
            directory.mkdir(mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)
        if not self.registered(spec.instance_id):
            self._register(spec)
        self._rotate_log(spec.instance_id)
        argv = [
            *self.command,
            "run",
            "--data-dir",
            str(data),
            "--port",
            str(spec.port),
            "--status-port",
            str(spec.status_port),
        ]
        with open(self._log_file(spec.instance_id), "ab", buffering=0) as log:
            os.chmod(log.name, 0o600)
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting\n".encode())
            popen = subprocess.Popen(  # noqa: S603  # our own command, no shell
                argv,
                cwd=self.cwd,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the reconciler; stopped by its group
                umask=0o077,
            )
        ticks = process_start_ticks(popen.pid) or 0
        process = _Process(popen.pid, ticks, time.time(), popen)
        self._processes[spec.instance_id] = process
        self._write_pid_file(spec, process)
        return InstanceStatus("running", pid=popen.pid, started_at=process.started_at)

    def stop(self, instance: str) -> None:
        self.stop_many([instance])

    def stop_many(self, instances: Sequence[str]) -> None:
        """SIGTERM to all, one shared grace period, then SIGKILL to the stragglers' groups."""
        procs = [(name, proc) for name in instances if (proc := self._lookup(name)) is not None]
        for _, proc in procs:
            if not proc.exit_code()[0]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        while time.monotonic() < deadline and any(not p.exit_code()[0] for _, p in procs):
            time.sleep(0.05)
        for name, proc in procs:
            # The whole group: the agent's engine child dies with it, whatever happened above.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(5)
            self._processes.pop(name, None)
        for name in instances:
            with contextlib.suppress(FileNotFoundError, ValueError):
                self._pid_file(name).unlink()

    def status(self, instance: str) -> InstanceStatus:
        proc = self._lookup(instance)
        if proc is None:
            return InstanceStatus("stopped")
        exited, code = proc.exit_code()
        if exited:
            detail = f"exited with code {code}" if code is not None else "exited"
            return InstanceStatus(
                "exited", pid=proc.pid, exit_code=code, started_at=proc.started_at, detail=detail
            )
        return InstanceStatus("running", pid=proc.pid, started_at=proc.started_at)

    def logs(self, instance: str, lines: int = 100) -> list[str]:
        lines = max(1, min(lines, MAX_LOG_LINES))
        try:
            with open(self._log_file(instance), "rb") as log:
                tail = deque(log, maxlen=lines)
        except FileNotFoundError:
            return []
        return [line.decode(errors="replace").rstrip("\n") for line in tail]

    def instances(self) -> list[str]:
        names = set(self._processes)
        if self.root.is_dir():
            names |= {
                entry.name
                for entry in self.root.iterdir()
                if entry.name.isdigit() and (entry / "runner.pid").exists()
            }
        return sorted(names, key=int)

    def discard(self, instance: str) -> None:
        self.stop(instance)
        shutil.rmtree(self.directory(instance), ignore_errors=True)

    # --- helpers

    def _lookup(self, instance: str) -> _Process | None:
        """The instance's process, adopting it from its pid file after a reconciler restart."""
        known = self._processes.get(instance)
        if known is not None:
            return known
        try:
            recorded = json.loads(self._pid_file(instance).read_text())
            pid, ticks = int(recorded["pid"]), int(recorded["start_ticks"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if process_start_ticks(pid) != ticks:
            with contextlib.suppress(FileNotFoundError):
                self._pid_file(instance).unlink()  # stale: that process is gone
            return None
        adopted = _Process(pid, ticks, float(recorded.get("started_at", time.time())))
        self._processes[instance] = adopted
        return adopted

    def _write_pid_file(self, spec: InstanceSpec, process: _Process) -> None:
        path = self._pid_file(spec.instance_id)
        tmp = path.with_suffix(".tmp")
        record = {
            "pid": process.pid,
            "start_ticks": process.start_ticks,
            "started_at": process.started_at,
            "port": spec.port,
            "status_port": spec.status_port,
        }
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def _environment(self, **extra: str) -> dict[str, str]:
        env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        return env | {"PYTHONUNBUFFERED": "1", "HOME": str(self.root)} | extra

    def _register(self, spec: InstanceSpec) -> None:
        argv = [
            *self.command,
            "register",
            "--url",
            spec.platform_url,
            "--data-dir",
            str(self.data_dir(spec.instance_id)),
            "--name",
            spec.name,
        ]
        try:
            done = subprocess.run(  # noqa: S603  # our own command, no shell
                argv,
                cwd=self.cwd,
                env=self._environment(**{TOKEN_ENV: spec.registration_code()}),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=REGISTER_TIMEOUT_SECONDS,
                check=False,
                umask=0o077,
            )
        except subprocess.TimeoutExpired:
            raise HostingError(
                f"Registering with {spec.platform_url} took longer than "
                f"{REGISTER_TIMEOUT_SECONDS:.0f} s."
            ) from None
        if done.returncode != 0:
            said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            reason = said[-1].strip() if said else f"exit code {done.returncode}"
            raise HostingError(f"Registering with {spec.platform_url} failed: {reason}"[:400])

    def _rotate_log(self, instance: str) -> None:
        path = self._log_file(instance)
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > LOG_MAX_BYTES:
                with open(path, "rb") as log:
                    log.seek(-LOG_KEEP_BYTES, os.SEEK_END)
                    keep = log.read()
                path.with_suffix(".log.1").write_bytes(keep)
                os.truncate(path, 0)
