"""The engine as a supervised child process (device-protocol.md, "Supervision").

``python -m edge_runner serve`` runs in its own session (process group), with a memory rlimit
(``RLIMIT_DATA``), a lowered CPU priority (nice 5) and ``PR_SET_PDEATHSIG`` so that it dies
with the agent (a killed agent never leaves an engine holding the port). The supervisor polls
``GET /flows/state`` every ``poll_seconds``: ``misses`` failed polls in a row (a wedged event
loop, e.g. node code looping in ``try/except BaseException``) kill the whole process group with
SIGKILL; an exited engine is restarted too, after a full-jitter backoff (``lib.backoff``).
Every restart is counted with its time and reported to ``on_crash(reason)`` and listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edge_runner.agent.engine_client import EngineClient, EngineError
from edge_runner.lib.backoff import Backoff
from edge_runner.lib.fsutil import fsync_dir
from edge_runner.runtime.paths import RunnerPaths

log = logging.getLogger("edge_runner.agent.supervisor")

POLL_SECONDS = 2.0
MISSES = 3
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0  # the engine stops within 8 s on SIGTERM
STABLE_AFTER_S = 60.0  # a run this long resets the restart backoff
NICE = 5
_PR_SET_PDEATHSIG = 1

CrashCallback = Callable[[str], None]


def _limit_child(memory_limit_bytes: int | None) -> Callable[[], None]:
    """What runs in the child between fork and exec (no Python objects shared with the
    parent are touched: only syscalls)."""

    def limit() -> None:
        if memory_limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (memory_limit_bytes, memory_limit_bytes))
        os.nice(NICE)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return limit


class Supervisor:
    """Runs one engine on ``127.0.0.1:port`` with ``paths.root`` as its data directory and
    ``token_file`` as its Admin API token; restarts it when it exits or wedges."""

    def __init__(
        self,
        paths: RunnerPaths,
        port: int,
        token_file: Path,
        memory_limit_bytes: int | None = None,
        *,
        on_crash: CrashCallback | None = None,
        poll_seconds: float = POLL_SECONDS,
        misses: int = MISSES,
        stop_seconds: float = STOP_TIMEOUT_S,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.paths = paths
        self.port = port
        self.token_file = token_file
        self.memory_limit_bytes = memory_limit_bytes
        self.on_crash = on_crash
        self.crash_listeners: list[CrashCallback] = []
        self.poll_seconds = poll_seconds
        self.misses = misses
        self.stop_seconds = stop_seconds
        self.environment = environment
        self.restarts = 0
        self.restart_log: list[tuple[float, str]] = []  # (unix time, reason)
        self.process: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.backoff = Backoff(0.2, 30.0)
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._started_at = 0.0
        self._client: EngineClient | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def log_file(self) -> Path:
        return self.paths.engine_log

    def client(self) -> EngineClient:
        """A client of the engine with the Admin API token (read from ``token_file``)."""
        if self._client is None:
            self._client = EngineClient(self.base_url, self.token_file.read_text().strip())
        return self._client

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, safe: bool = False) -> None:
        """Spawn the engine, wait until it answers, then keep watching it. ``safe``: the
        engine loads its stored flows without starting them (its safe mode), e.g. because
        they are the flows of a target being rolled back."""
        self._stopping = False
        self.paths.root.mkdir(parents=True, exist_ok=True)
        if safe:
            self._hold_flows()
        await self._spawn()
        if not await self._until_ready(START_TIMEOUT_S):
            log.error("the engine did not answer within %ss; restarting it", START_TIMEOUT_S)
            await self._kill()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        """SIGTERM the engine's process group, SIGKILL it after ``stop_seconds``."""
        self._stopping = True
        await self.stop_watching()
        proc = self.process
        if proc is not None and proc.returncode is None:
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.stop_seconds)
            except TimeoutError:
                log.warning("the engine ignored SIGTERM for %ss; killing it", self.stop_seconds)
                await self._kill()
        self.ready.clear()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def restart_safe(self) -> None:
        """Kill the engine and start it in safe mode (its stored flows not started): the way
        out of flows that kill or wedge the engine before a rollback deploy can land."""
        await self.stop_watching()
        await self._kill()
        self.ready.clear()
        await self.start(safe=True)

    async def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    def _hold_flows(self) -> None:
        """The engine's safe-mode marker (``RunnerPaths.starting_marker``): at boot it loads
        the stored flows and starts none of them."""
        doc = {"rev": "held back by the device agent", "since": time.time(), "pid": os.getpid()}
        fd = os.open(self.paths.starting_marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(doc).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.paths.root)

    async def wait_ready(self, within: float) -> bool:
        """Wait until the engine answers (after a restart); False after ``within`` s."""
        try:
            await asyncio.wait_for(self.ready.wait(), within)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ internals
    async def _spawn(self) -> None:
        command = [
            sys.executable,
            "-m",
            "edge_runner",
            "serve",
            "--data-dir",
            str(self.paths.root),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--admin-token-file",
            str(self.token_file),
        ]
        output = await asyncio.to_thread(open, self.log_file, "ab")
        with output:
            self.process = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_limit_child(self.memory_limit_bytes),
                env=self.environment,
            )
        self._started_at = time.monotonic()
        log.info("engine started, pid %s", self.process.pid)

    async def _until_ready(self, within: float) -> bool:
        deadline = time.monotonic() + within
        proc = self.process
        while time.monotonic() < deadline and proc is not None and proc.returncode is None:
            try:
                await self.client().state()
            except EngineError:
                await asyncio.sleep(0.05)
                continue
            self.ready.set()
            return True
        return False

    def _signal(self, signum: int) -> None:
        proc = self.process
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)

    async def _kill(self) -> None:
        self._signal(signal.SIGKILL)
        if self.process is not None and self.process.returncode is None:
            await self.process.wait()

    async def _watch(self) -> None:
        misses = 0
        while not self._stopping:
            proc = self.process
            if proc is None:
                return
            exited = asyncio.ensure_future(proc.wait())
            done, _ = await asyncio.wait({exited}, timeout=self.poll_seconds)
            if done:
                await self._restart(f"the engine exited with code {proc.returncode}")
                misses = 0
                continue
            exited.cancel()
            try:
                await asyncio.wait_for(self.client().state(), self.poll_seconds)
                misses = 0
                self.ready.set()
            except (EngineError, TimeoutError):
                misses += 1
                log.warning("engine poll missed (%s of %s)", misses, self.misses)
                if misses >= self.misses:
                    await self._restart(
                        f"the engine did not answer for {misses} polls "
                        f"({misses * self.poll_seconds:g} s): killed"
                    )
                    misses = 0

    async def _restart(self, reason: str) -> None:
        self.ready.clear()
        await self._kill()
        self.restarts += 1
        self.restart_log.append((time.time(), reason))
        log.error("engine restart %s: %s", self.restarts, reason)
        for callback in (self.on_crash, *self.crash_listeners):
            if callback is not None:
                try:
                    callback(reason)
                except Exception:
                    log.exception("crash callback failed")
        if time.monotonic() - self._started_at > STABLE_AFTER_S:
            self.backoff.reset()
        while not self._stopping:
            await asyncio.sleep(self.backoff.next_delay())
            try:
                await self._spawn()
            except OSError as exc:
                log.error("the engine could not be started: %s", exc)
                continue
            if await self._until_ready(START_TIMEOUT_S):
                return
            log.error("the restarted engine did not answer; trying again")
            await self._kill()
