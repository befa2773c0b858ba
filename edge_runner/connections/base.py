"""Shared connection machinery: one live client per endpoint, many nodes using it.

A ``SharedConnection`` owns the client of one endpoint (a PLC, a broker). Nodes acquire it from
a ``ConnectionPool`` by endpoint key, listen to its state and release it in ``stop()``; the
last release closes it. The connection runs one supervisor task that connects, serves until the
link drops, and reconnects with the runner's full-jitter exponential backoff
(``lib.backoff``), so a fleet does not retry in lock step.

State transitions are reported once each way (STYLE rules 7 and 8): ``connecting`` ->
``connected`` -> ``unavailable`` (one warning log line, every listener told once) ->
``connected`` (one info line "recovered"). Failed retries while unavailable are logged at debug
level only. Vendor exceptions are mapped to the contract's failure classes in one place per
protocol (``classify``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Generic, Literal, Protocol, TypeVar

from edge_runner.contract import NeedsUserFix, Node, NodeError, RetryLater
from edge_runner.lib.backoff import Backoff

log = logging.getLogger("edge_runner.connections")

State = Literal["connecting", "connected", "unavailable", "closed"]
Listener = Callable[[State, str], None]

STATUS_TEXT: dict[State, tuple[str, str, str]] = {
    "connecting": ("yellow", "ring", "connecting"),
    "connected": ("green", "dot", "connected"),
    "unavailable": ("red", "ring", "unavailable"),
    "closed": ("grey", "ring", "closed"),
}


def show_state(node: Node, state: State, detail: str = "") -> None:
    """Set a node's status badge for a connection state (the node's runtime drops repeats)."""
    fill, shape, text = STATUS_TEXT[state]
    node.status(fill, shape, text)  # type: ignore[arg-type]  # literals from STATUS_TEXT


class SharedConnection:
    """One client for one endpoint; subclasses implement ``_connect``, ``_serve``,
    ``_disconnect`` and ``classify``."""

    kind = "connection"

    def __init__(
        self, key: str, label: str, reconnect_min: float = 1.0, reconnect_max: float = 30.0
    ) -> None:
        self.key = key
        self.label = label
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.state: State = "connecting"
        self.detail = ""
        self.failure: NodeError | None = None
        self.users = 0
        self.transitions = 0  # connected <-> unavailable changes (tests and metrics)
        self._listeners: dict[object, Listener] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._was_connected = False

    # ------------------------------------------------------------------ listeners
    def add_listener(self, owner: object, listener: Listener) -> None:
        """Register ``listener`` and tell it the current state right away."""
        self._listeners[owner] = listener
        listener(self.state, self.detail)

    def remove_listener(self, owner: object) -> None:
        self._listeners.pop(owner, None)

    def _set_state(self, state: State, detail: str = "") -> None:
        if state == self.state:
            return
        previous, self.state, self.detail = self.state, state, detail
        if state == "connected":
            self._connected.set()
            if previous == "unavailable":
                self.transitions += 1
                log.info("%s %s recovered", self.kind, self.label)
            else:
                log.info("%s %s connected", self.kind, self.label)
            self._was_connected = True
        else:
            self._connected.clear()
            if state == "unavailable":
                self.transitions += int(previous == "connected")
                log.warning("%s %s unavailable: %s", self.kind, self.label, detail)
        for listener in list(self._listeners.values()):
            try:
                listener(state, detail)
            except Exception:  # a listener must not break the connection's supervisor
                log.exception("connection listener failed")

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    async def wait_connected(self, within: float | None = None) -> bool:
        """Wait up to ``within`` seconds for the link; False when it did not come up."""
        try:
            async with asyncio.timeout(within):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def mark_lost(self, reason: str) -> None:
        """A request found the link broken: the supervisor reconnects."""
        if self.state == "connected":
            self.detail = reason
            self._lost.set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"{self.kind} {self.label}"
            )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self._disconnect()
        except Exception:  # closing a dead client may raise; nothing left to do
            log.debug("%s %s: error while closing", self.kind, self.label, exc_info=True)
        self._set_state("closed")

    async def _supervise(self) -> None:
        delays = Backoff(self.reconnect_min, self.reconnect_max)
        while True:
            self._lost.clear()
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failure = self.classify(exc)
                if self.state == "unavailable":
                    log.debug("%s %s: retry failed: %s", self.kind, self.label, exc)
                self._set_state("unavailable", str(self.failure))
                await self._safe_disconnect()
                await asyncio.sleep(self._next_delay(delays))
                continue
            self.failure = None
            self._set_state("connected")
            delays.reset()
            try:
                await self._serve()
                reason = self.detail or "connection closed"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failure = self.classify(exc)
                reason = str(self.failure)
            self._set_state("unavailable", reason)
            await self._safe_disconnect()
            await asyncio.sleep(self._next_delay(delays))

    def _next_delay(self, delays: Backoff) -> float:
        delay = delays.next_delay()
        # a configuration problem will not fix itself quickly: retry at the slow end
        return max(delay, self.reconnect_max) if isinstance(self.failure, NeedsUserFix) else delay

    async def _safe_disconnect(self) -> None:
        try:
            await self._disconnect()
        except Exception:
            log.debug("%s %s: error while disconnecting", self.kind, self.label, exc_info=True)

    async def _wait_lost(self, poll: float, alive: Callable[[], bool]) -> None:
        """Return when a request reported the link lost or ``alive()`` turns false."""
        while alive():
            try:
                async with asyncio.timeout(poll):
                    await self._lost.wait()
                return
            except TimeoutError:
                continue
        self.detail = self.detail or "connection closed by peer"

    # ------------------------------------------------------------------ protocol hooks
    async def _connect(self) -> None:
        raise NotImplementedError

    async def _serve(self) -> None:
        """Run while connected; return or raise when the link is gone."""
        raise NotImplementedError

    async def _disconnect(self) -> None:
        raise NotImplementedError

    def classify(self, exc: BaseException) -> NodeError:
        """Map a vendor exception to ``RetryLater`` / ``NeedsUserFix`` / ``NodeFailed``."""
        if isinstance(exc, NodeError):
            return exc
        if isinstance(exc, (OSError, TimeoutError, ConnectionError)):
            return RetryLater(str(exc) or type(exc).__name__)
        return RetryLater(f"{type(exc).__name__}: {exc}")


class Endpoint(Protocol):
    @property
    def key(self) -> str:
        """Equal for endpoints one client can serve."""


C = TypeVar("C", bound=SharedConnection)
E = TypeVar("E", bound=Endpoint)


class ConnectionPool(Generic[E, C]):
    """Connections by endpoint key, reference counted: the first user starts one, the last
    user's release closes it. One pool per protocol per engine (an engine service), so two
    engines never share a client."""

    def __init__(self, connect: Callable[[E], C]) -> None:
        self._connect = connect
        self._items: dict[str, C] = {}

    def acquire(self, endpoint: E) -> C:
        """The shared connection for ``endpoint`` (started on first use); pair with
        ``release``."""
        conn = self._items.get(endpoint.key)
        if conn is None:
            conn = self._connect(endpoint)
            self._items[endpoint.key] = conn
            conn.start()
        conn.users += 1
        return conn

    async def release(self, conn: C) -> None:
        conn.users -= 1
        if conn.users <= 0 and self._items.get(conn.key) is conn:
            del self._items[conn.key]
            await conn.close()

    def get(self, key: str) -> C | None:
        return self._items.get(key)

    def __len__(self) -> int:
        return len(self._items)

    async def close(self) -> None:
        """Close every connection still open (its users were not stopped: engine shutdown)."""
        items = list(self._items.values())
        self._items.clear()
        for conn in items:
            await conn.close()
