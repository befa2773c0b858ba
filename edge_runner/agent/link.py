"""The agent's end of the device link (docs/device-protocol.md, "The link").

One websocket to ``/ws/devices/link/`` with the device credential. The client says ``hello``,
takes ``welcome`` (heartbeat interval, the signed key list it pins, the current target), then
sends heartbeats and answers the platform's messages: ``target`` (verify, download, apply,
``apply_result``), ``watch`` (stream the ring buffer while the lease lives), ``suspend`` /
``resume``, ``decommission`` (wipe and stop) and ``dev_request`` (a few Admin API calls).

Reconnects wait with full-jitter exponential backoff (1 s doubling to 60 s), and the first
attempt after start or after a lost link is spread over ``first_window`` seconds, so a fleet
that lost the platform at once comes back at a flat rate (RELIABILITY.md family 26). A frame the
platform should not have sent is logged and dropped: it never stops the agent.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import os
import random
import re
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from edge_runner.agent.download import DownloadError, fetch_bundle
from edge_runner.agent.engine_client import with_credentials
from edge_runner.agent.identity import AGENT_VERSION, Identity
from edge_runner.agent.stream import StreamBuffer
from edge_runner.lib.backoff import Backoff
from edge_runner.protocol import link, manifest
from edge_runner.protocol.manifest import Manifest, ManifestError
from edge_runner.runtime.paths import RunnerPaths

log = logging.getLogger(__name__)

BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
FIRST_WINDOW = 5.0
WELCOME_TIMEOUT = 30.0
CONNECT_TIMEOUT = 15.0
PING_SECONDS = 30.0
ENGINE_TIMEOUT = 5.0
DEV_REQUEST_TIMEOUT = 30.0
MAX_LEASE_SECONDS = 600.0
DEFAULT_LEASE_SECONDS = 60.0
RECENT_ERRORS = 5
ATTEMPTS_KEPT = 1000
# At most one stream frame per this many seconds (~10 a second); a first item goes at once.
STREAM_BATCH_SECONDS = 0.1
# Developer mode reaches these Admin API routes and nothing else.
DEV_ROUTES = (
    ("GET", re.compile(r"/flows")),
    ("POST", re.compile(r"/flows")),
    ("GET", re.compile(r"/flows/state")),
    ("POST", re.compile(r"/flows/state")),
    ("POST", re.compile(r"/inject/[A-Za-z0-9._-]{1,64}")),
)
_ENGINE_STATES = {"start": "running", "safe": "safe", "stop": "stopped"}


class Applier(Protocol):
    async def apply(self, manifest: Manifest, /) -> Any: ...


class EngineClient(Protocol):
    async def state(self) -> dict[str, Any]: ...

    async def request(self, method: str, path: str, body: Any, /) -> tuple[int, Any]: ...


class Store(Protocol):
    @property
    def state(self) -> Any: ...

    def incoming(self, generation: int, /) -> Path: ...


def _field(obj: Any, name: str) -> Any:
    """A field of the store's state, whether it is a mapping or an object."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _as_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    if isinstance(value, int):
        return {"generation": value}
    return None


def dev_route_allowed(method: str, path: str) -> bool:
    return any(method == m and pattern.fullmatch(path) for m, pattern in DEV_ROUTES)


class ResourceMeter:
    """The heartbeat's ``resources``: CPU of the agent and engine processes (from /proc),
    their resident memory, free disk of the data directory, uptime and engine restarts."""

    def __init__(
        self,
        paths: RunnerPaths,
        *,
        memory_limit_bytes: int | None = None,
        engine_pid: Callable[[], int | None] = lambda: None,
        engine_restarts: Callable[[], int] = lambda: 0,
    ) -> None:
        self.paths = paths
        self.memory_limit_bytes = memory_limit_bytes
        self.engine_pid = engine_pid
        self.engine_restarts = engine_restarts
        self.started = time.monotonic()
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last: tuple[float, float] | None = None

    def _pids(self) -> list[int]:
        pid = self.engine_pid()
        return [os.getpid()] + ([pid] if pid else [])

    @staticmethod
    def _read(path: str) -> str:
        try:
            with open(path) as handle:
                return handle.read()
        except OSError:
            return ""

    def _cpu_seconds(self) -> float:
        total = 0.0
        for pid in self._pids():
            stat = self._read(f"/proc/{pid}/stat")
            fields = stat.rpartition(")")[2].split()
            if len(fields) > 12:
                total += (int(fields[11]) + int(fields[12])) / self._ticks
        return total

    def _memory_bytes(self) -> int:
        total = 0
        for pid in self._pids():
            for line in self._read(f"/proc/{pid}/status").splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total

    def sample(self) -> dict[str, Any]:
        now, cpu = time.monotonic(), self._cpu_seconds()
        percent = 0.0
        if self._last is not None and now > self._last[0]:
            percent = max(0.0, (cpu - self._last[1]) / (now - self._last[0]) * 100)
        self._last = (now, cpu)
        try:
            disk_free = shutil.disk_usage(self.paths.root).free
        except OSError:
            disk_free = 0
        return {
            "cpu_percent": round(percent, 1),
            "memory_bytes": self._memory_bytes(),
            "memory_limit_bytes": self.memory_limit_bytes,
            "disk_free_bytes": disk_free,
            "uptime_seconds": round(now - self.started, 1),
            "engine_restarts": self.engine_restarts(),
        }


class LinkClient:
    """Keeps the link to the platform up and does what the platform asks."""

    def __init__(
        self,
        identity: Identity,
        applier: Applier,
        engine_client: EngineClient,
        stream_buffer: StreamBuffer,
        *,
        paths: RunnerPaths,
        store: Store,
        resources: ResourceMeter | None = None,
        on_decommission: Callable[[], Awaitable[None]] | None = None,
        engine_facts: Callable[[], Mapping[str, Any]] | None = None,
        rng: random.Random | None = None,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        first_window: float = FIRST_WINDOW,
    ) -> None:
        self.identity = identity
        self.applier = applier
        self.engine_client = engine_client
        self.stream = stream_buffer
        self.paths = paths
        self.store = store
        self.resources = resources or ResourceMeter(paths)
        self.on_decommission = on_decommission
        # the heartbeat's ``nodes`` ({total, error}) and ``errors`` (last 5), from the applier
        self.engine_facts: Callable[[], Mapping[str, Any]] = engine_facts or dict
        self.rng = rng or random.Random()  # noqa: S311  # timing spread, not cryptography
        self.backoff = Backoff(backoff_base, backoff_cap, self.rng)
        self.first_window = first_window
        self.heartbeat_seconds = identity.heartbeat_seconds
        self.suspended = False
        self.decommissioned = False
        self.updating = False
        # loop.time() of the recent connection attempts and the delays drawn before them
        self.attempts: collections.deque[float] = collections.deque(maxlen=ATTEMPTS_KEPT)
        self.delays: collections.deque[float] = collections.deque(maxlen=ATTEMPTS_KEPT)
        self.connected = asyncio.Event()
        self._stopped = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._send_lock = asyncio.Lock()
        self._refused: dict[str, Any] | None = None
        self._pending: dict[str, Any] | None = None
        self._target_ready = asyncio.Event()
        self._lease_until = 0.0
        self._stream_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._described: dict[int, dict[str, Any]] = {}

    # ------------------------------------------------------------------ lifecycle
    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close(code=link.CLOSE_GOING_AWAY)

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff until ``stop()`` or a decommission."""
        loop = asyncio.get_running_loop()
        delay = self.rng.uniform(0, self.first_window)
        # the handshake gets CONNECT_TIMEOUT; a connected link is watched by ws pings
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT, sock_read=CONNECT_TIMEOUT
        )
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            # targets outlive a connection: a link lost mid-apply does not cut the apply
            worker = asyncio.ensure_future(self._target_worker())
            try:
                while not self.stopped:
                    self.delays.append(delay)
                    if await self._pause(delay):
                        break
                    self.attempts.append(loop.time())
                    if await self._connect(session):
                        self.backoff.reset()
                        delay = self.rng.uniform(0, self.first_window)
                    else:
                        delay = self.backoff.next_delay()
            finally:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
                self._session = None

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped meanwhile (answers whether it was)."""
        try:
            await asyncio.wait_for(self._stopped.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _connect(self, session: aiohttp.ClientSession) -> bool:
        """One connection; answers whether it got as far as ``welcome``."""
        try:
            async with session.ws_connect(
                self.identity.link_url,
                headers=self.identity.auth_header,
                max_msg_size=link.MAX_FRAME_BYTES,
                ssl=self.identity.ssl() or True,
                timeout=aiohttp.ClientWSTimeout(ws_close=10.0),
                autoping=True,
                heartbeat=PING_SECONDS,  # a half-open link (NAT dropped it) is noticed
            ) as ws:
                self._ws = ws
                try:
                    return await self._serve(ws)
                finally:
                    self._ws = None
                    self.connected.clear()
                    await self._end_tasks()
        except aiohttp.WSServerHandshakeError as exc:
            log.warning("the platform refused the link (HTTP %s)", exc.status)
            if exc.status in (401, 403):
                await self._check_self()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("cannot reach the platform: %s", exc or type(exc).__name__)
        return False

    async def _end_tasks(self) -> None:
        tasks = [*self._tasks, *([self._stream_task] if self._stream_task else [])]
        self._stream_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("link task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ one connection
    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        await self._send(self._hello())
        welcome = await self._await_welcome(ws)
        if welcome is None:
            return False
        self.connected.set()
        await self._on_welcome(welcome)
        self._spawn(self._heartbeats())
        async for frame in ws:
            if frame.type == aiohttp.WSMsgType.TEXT:
                await self._dispatch(frame.data)
            elif frame.type == aiohttp.WSMsgType.ERROR:
                break
            else:
                log.warning("dropped a non-text frame from the platform (%s)", frame.type.name)
            if self.stopped:
                break
        code = ws.close_code
        log.info("link closed (%s)", code)
        if code in (link.CLOSE_DECOMMISSIONED, link.CLOSE_UNAUTHORIZED) and not self.stopped:
            await self._check_self()
        return True

    async def _await_welcome(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WELCOME_TIMEOUT
        while (left := deadline - loop.time()) > 0:
            try:
                frame = await ws.receive(timeout=left)
            except TimeoutError:
                break
            if frame.type != aiohttp.WSMsgType.TEXT:
                return None
            message = self._decode(frame.data)
            if message is None:
                continue
            if message["type"] == link.WELCOME:
                return message
            log.warning("dropped %s before welcome", message["type"])
        log.warning("no welcome from the platform within %g s", WELCOME_TIMEOUT)
        return None

    def _decode(self, raw: str) -> dict[str, Any] | None:
        try:
            return link.decode(raw, allowed=link.PLATFORM_TYPES)
        except link.LinkError as exc:
            log.warning("dropped a malformed frame from the platform: %s", exc)
            return None

    async def _send(self, message: dict[str, Any]) -> bool:
        ws = self._ws
        if ws is None or ws.closed:
            return False
        text = link.encode(message)
        if len(text.encode()) > link.MAX_FRAME_BYTES:
            log.warning("a %s frame over the size limit was not sent", message["type"])
            return False
        async with self._send_lock:
            try:
                await ws.send_str(text)
            except (ConnectionError, aiohttp.ClientError) as exc:
                log.info("send failed: %s", exc)
                return False
        return True

    async def _dispatch(self, raw: str) -> None:
        message = self._decode(raw)
        if message is None:
            return
        kind = message["type"]
        try:
            if kind == link.TARGET:
                self._offer_target(message["target"])
            elif kind == link.WATCH:
                self._on_watch(message)
            elif kind == link.SUSPEND:
                self.suspended = True
                self._pending = None
            elif kind == link.RESUME:
                self.suspended = False
            elif kind == link.DECOMMISSION:
                await self._decommission()
            elif kind == link.DEV_REQUEST:
                self._spawn(self._dev_request(message))
            elif kind == link.ERROR:
                log.warning("the platform refused a frame: %s", message["message"])
            elif kind == link.WELCOME:
                await self._on_welcome(message)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("dropped a %s message the agent cannot use: %s", kind, exc)

    # ------------------------------------------------------------------ hello / welcome
    def _store_state(self) -> Any:
        return self.store.state

    def _active(self) -> dict[str, Any] | None:
        return self._describe(_field(self._store_state(), "active"))

    def _describe(self, active: Any) -> dict[str, Any] | None:
        """``{snapshot, generation, digest}`` of a generation, from its stored manifest."""
        if not isinstance(active, int) or isinstance(active, bool):
            return _as_dict(active)
        cached = self._described.get(active)
        if cached is None:
            cached = {"generation": active, "snapshot": None, "digest": None}
            reader = getattr(self.store, "manifest", None)
            try:
                body = reader(active)["manifest"] if reader is not None else None
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("cannot read the manifest of generation %s: %s", active, exc)
                body = None
            if isinstance(body, Mapping):
                cached["snapshot"] = body.get("snapshot")
                cached["digest"] = manifest.sha256_hex(manifest.canonical_json(body))
                self._described[active] = cached
        return dict(cached)

    def _handled(self) -> dict[str, Any] | None:
        """The last target acted on: a refusal (kept in memory) until the store records a
        newer outcome."""
        handled = _as_dict(_field(self._store_state(), "handled"))
        if self._refused is not None and self._refused["store_handled"] == handled:
            return {"generation": self._refused["generation"], "outcome": "refused"}
        return handled

    def _min_generation(self) -> int:
        value = _field(self._store_state(), "min_generation")
        return value if isinstance(value, int) else 0

    def _hello(self) -> dict[str, Any]:
        return {
            "type": link.HELLO,
            "protocol": link.PROTOCOL_VERSION,
            "agent_version": AGENT_VERSION,
            "state": self._state_name(None),
            "active": self._active(),
            "target": self._handled(),
        }

    async def _on_welcome(self, message: dict[str, Any]) -> None:
        self.heartbeat_seconds = link.heartbeat_interval(message["heartbeat_seconds"])
        device = message.get("device")
        if isinstance(device, Mapping):
            self.suspended = device.get("status") == "suspended"
        keys = message.get("keys")
        if keys is not None:
            self._pin_keys(keys)
        if "target" in message:
            self._offer_target(message["target"])

    def _pin_keys(self, document: Any) -> None:
        try:
            keys = manifest.verify_keys(
                document, trusted_keys=self.identity.signing_keys, team=self.identity.team
            )
        except ManifestError as exc:
            log.warning("ignored a key list that does not verify (%s): %s", exc.code, exc)
            return
        if tuple(keys) != self.identity.signing_keys:
            self.identity = self.identity.with_signing_keys(keys)
            self.identity.save(self.paths)
            log.info("pinned %d signing keys", len(keys))

    # ------------------------------------------------------------------ heartbeats
    def _state_name(self, engine: Mapping[str, Any] | None) -> str:
        if self.suspended:
            return "suspended"
        if self.updating:
            return "updating"
        if engine is None:
            return "running"
        return _ENGINE_STATES.get(str(engine.get("state")), "error")

    async def _engine_state(self) -> dict[str, Any] | None:
        try:
            doc = await asyncio.wait_for(self.engine_client.state(), ENGINE_TIMEOUT)
        except Exception as exc:  # the engine being down is a state to report, not a crash
            log.info("engine state unavailable: %s", exc)
            return {"state": "error"}
        return doc if isinstance(doc, dict) else {"state": "error"}

    async def heartbeat(self) -> dict[str, Any]:
        engine = await self._engine_state()
        message: dict[str, Any] = {
            "type": link.HEARTBEAT,
            "state": self._state_name(engine),
            "active": self._active(),
            "target": self._handled(),
            "resources": self.resources.sample(),
        }
        facts = self.engine_facts()
        nodes = facts.get("nodes")
        if isinstance(nodes, Mapping):
            message["nodes"] = {"total": nodes.get("total", 0), "error": nodes.get("error", 0)}
        errors = facts.get("errors")
        message["errors"] = list(errors)[-RECENT_ERRORS:] if errors else []
        return message

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            await self._send(await self.heartbeat())

    # ------------------------------------------------------------------ targets
    def _offer_target(self, target: Any) -> None:
        if target is None:
            return
        if not isinstance(target, Mapping):
            log.warning("dropped a target that is not an object")
            return
        if self.suspended:
            log.info("suspended: target ignored")
            return
        generation = target.get("generation")
        handled = self._handled()
        if handled and handled.get("generation") == generation:
            return
        self._pending = dict(target)
        self._target_ready.set()

    async def _target_worker(self) -> None:
        while True:
            await self._target_ready.wait()
            self._target_ready.clear()
            target, self._pending = self._pending, None
            if target is None or self.suspended:
                continue
            handled = self._handled()
            if handled and handled.get("generation") == target.get("generation"):
                continue  # offered again while it was being applied
            await self.handle_target(target)

    async def handle_target(self, target: Mapping[str, Any]) -> dict[str, Any] | None:
        """Verify, fetch and apply one target; answers the ``apply_result`` sent (None when
        the download must be retried: the target stays unhandled, the platform resends it)."""
        try:
            verified = manifest.verify(
                target.get("manifest"),
                trusted_keys=self.identity.signing_keys,
                team=self.identity.team,
                device=self.identity.device_id,
                min_generation=self._min_generation(),
            )
            if verified.generation != target.get("generation"):
                raise ManifestError("malformed", "the target's generation is not its manifest's")
        except ManifestError as exc:
            return await self._refuse(target, exc)
        self.updating = True
        try:
            incoming = self.store.incoming(verified.generation)
            try:
                stats = await fetch_bundle(
                    self._session_or_fail(),
                    self.identity.platform_url,
                    verified,
                    incoming,
                    headers=self.identity.auth_header,
                    ssl_context=self.identity.ssl(),
                )
            except ManifestError as exc:
                shutil.rmtree(incoming, ignore_errors=True)
                return await self._refuse(target, exc)
            except DownloadError as exc:
                log.warning("target %s: download failed, will retry: %s", verified.generation, exc)
                return None
            log.info(
                "target %s fetched: %d bytes (%d resumes)",
                verified.generation,
                stats.received,
                stats.resumed,
            )
            try:
                outcome = await self.applier.apply(verified)
                result = {
                    "outcome": str(_field(outcome, "outcome")),
                    "reason": _field(outcome, "reason") or "",
                    "active": self._describe(_field(outcome, "active")),
                }
            except Exception as exc:  # the applier's own failure is this target's outcome
                log.exception("applying target %s failed", verified.generation)
                result = {"outcome": "failed", "reason": str(exc), "active": self._active()}
        finally:
            self.updating = False
        message = {
            "type": link.APPLY_RESULT,
            "snapshot": verified.snapshot,
            "generation": verified.generation,
            **result,
        }
        await self._send(message)
        return message

    def _session_or_fail(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise DownloadError("network", "the link is not running")
        return self._session

    async def _refuse(self, target: Mapping[str, Any], exc: ManifestError) -> dict[str, Any]:
        generation = target.get("generation")
        generation = generation if isinstance(generation, int) else 0
        log.warning("refused target %s: %s (%s)", generation, exc, exc.code)
        self._refused = {
            "generation": generation,
            "store_handled": _as_dict(_field(self._store_state(), "handled")),
        }
        snapshot = target.get("snapshot")
        message = {
            "type": link.APPLY_RESULT,
            "snapshot": str(snapshot) if snapshot is not None else "",
            "generation": generation,
            "outcome": "refused",
            "reason": f"{exc.code}: {exc}",
            "active": self._active(),
        }
        await self._send(message)
        return message

    # ------------------------------------------------------------------ watch / stream
    def _on_watch(self, message: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        if not message["on"]:
            self._lease_until = 0.0
            if self._stream_task is not None:
                self._stream_task.cancel()
                self._stream_task = None
            return
        lease = message.get("lease_seconds", DEFAULT_LEASE_SECONDS)
        if not isinstance(lease, int | float) or isinstance(lease, bool) or lease <= 0:
            lease = DEFAULT_LEASE_SECONDS
        self._lease_until = loop.time() + min(float(lease), MAX_LEASE_SECONDS)
        since = message.get("since")
        since = since if isinstance(since, int) and not isinstance(since, bool) else None
        if self._stream_task is None or self._stream_task.done():
            self._stream_task = asyncio.ensure_future(self._stream_while_watched(since))

    async def _stream_while_watched(self, since: int | None) -> None:
        loop = asyncio.get_running_loop()
        cursor = self.stream.last_seq if since is None else since
        last_sent = 0.0
        if since is None:
            self._restate_node_status()
        if since is not None:
            cursor = await self._send_batches(since)
        while (left := self._lease_until - loop.time()) > 0:
            if await self.stream.wait(cursor, left):
                # Leading edge: an item after a quiet spell goes at once (live debug latency);
                # a busy stream is batched, at most one frame per STREAM_BATCH_SECONDS.
                since_last = loop.time() - last_sent
                if since_last < STREAM_BATCH_SECONDS:
                    await asyncio.sleep(STREAM_BATCH_SECONDS - since_last)
                last_sent = loop.time()
                cursor = await self._send_batches(cursor)
        log.info("watch lease ended")

    def _restate_node_status(self) -> None:
        """A new watcher first sees every node's current status: statuses change rarely (a
        poll node stays green for days), so the stream alone would show none of them."""
        watch = getattr(self.applier, "watch", None)
        for node, status in dict(getattr(watch, "statuses", {})).items():
            self.stream.add("status", node=node, status=dict(status))

    async def _send_batches(self, cursor: int) -> int:
        for batch in self.stream.batches(cursor):
            if batch["items"]:
                cursor = batch["items"][-1]["seq"]
            elif "overflow" in batch:
                cursor = batch["overflow"]["last_seq"]
            await self._send(batch)
        return cursor

    # ------------------------------------------------------------------ developer mode
    async def _dev_request(self, message: dict[str, Any]) -> None:
        method, path = message["method"].upper(), message["path"]
        if self.suspended:
            status, body = 403, {"code": "suspended", "message": "the device is suspended"}
        elif not dev_route_allowed(method, path):
            status, body = (
                403,
                {
                    "code": "forbidden_path",
                    "message": f"developer mode cannot call {method} {path[:200]}",
                },
            )
        else:
            try:
                request_body = self._dev_body(method, path, message.get("body"))
                status, body = await asyncio.wait_for(
                    self.engine_client.request(method, path, request_body),
                    DEV_REQUEST_TIMEOUT,
                )
            except ManifestError:
                status, body = (
                    400,
                    {
                        "code": "bad_credentials",
                        "message": "the sealed credentials do not open with this device's key",
                    },
                )
            except Exception as exc:  # the engine's failure is the answer, not the agent's
                status, body = 502, {"code": "engine_unavailable", "message": str(exc)}
        request = message["request"]
        result = {"type": link.DEV_RESULT, "request": request, "status": status, "body": body}
        if not await self._send(result) and self._ws is not None and not self._ws.closed:
            await self._send(
                {
                    "type": link.DEV_RESULT,
                    "request": message["request"],
                    "status": 413,
                    "body": {"code": "too_large", "message": "the answer is over the frame limit"},
                }
            )

    def _dev_body(self, method: str, path: str, body: Any) -> Any:
        """A developer-mode ``POST /flows`` body as the engine takes it: the credentials the
        platform sealed to this device (``credentials_sealed``, base64) opened and put back
        into their nodes, Node-RED style (a node sent without them keeps what the engine
        stores; ``__PWRD__`` keeps a stored field). ``ManifestError`` when the blob does not
        open or is not ``{node id: {field: text}}``; nothing about it is logged."""
        if method != "POST" or path != "/flows" or not isinstance(body, dict):
            return body
        if "credentials_sealed" not in body:
            return body
        rest = {k: v for k, v in body.items() if k != "credentials_sealed"}
        try:
            sealed = base64.b64decode(str(body["credentials_sealed"]), validate=True)
            opened = json.loads(
                manifest.unseal(
                    sealed,
                    private_key=self.identity.sealing_private_key,
                    device=self.identity.device_id,
                )
            )
        except ValueError:  # binascii.Error and UnicodeDecodeError too
            raise ManifestError("sealed", "the sealed credentials are malformed") from None
        if not isinstance(opened, dict) or not all(
            isinstance(fields, dict) and all(isinstance(v, str) for v in fields.values())
            for fields in opened.values()
        ):
            raise ManifestError("sealed", "the sealed credentials are not {node: {field: text}}")
        flows = rest.get("flows")
        if not isinstance(flows, list):
            return rest
        rest["flows"] = with_credentials(flows, opened)
        return rest

    # ------------------------------------------------------------------ decommission
    async def _check_self(self) -> None:
        """After a refused handshake or an unauthorized close: is this device decommissioned?"""
        session = self._session
        if session is None:
            return
        try:
            async with session.get(
                self.identity.http_url("/api/v1/devices/self/"),
                headers=self.identity.auth_header,
                ssl=self.identity.ssl() or True,
                timeout=aiohttp.ClientTimeout(total=15),
            ) as answer:
                body = await answer.json(content_type=None) if answer.status == 401 else None
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("cannot check the device's status: %s", exc)
            return
        if status == 401 and isinstance(body, dict) and body.get("code") == "decommissioned":
            await self._decommission()
        elif status == 401:
            log.error("the platform no longer accepts this device's credential: register again")

    async def _decommission(self) -> None:
        log.warning("decommissioned by the platform: wiping credentials and stopping")
        self.decommissioned = True
        # Stopped is told last: whoever waits for it (the agent's main) cancels this task, and
        # a wipe after that would never happen.
        try:
            try:
                if self.on_decommission is not None:
                    await self.on_decommission()
            except Exception:  # the wipe must happen whatever stopping the engine did
                log.exception("stopping before the wipe failed")
            finally:
                Identity.wipe(self.paths)
            ws = self._ws
            if ws is not None and not ws.closed:
                await ws.close(code=link.CLOSE_GOING_AWAY)
        finally:
            self._stopped.set()
