"""The device link (``ws/devices/link/``) and the browser's live view of one device.

``DeviceLinkConsumer`` speaks docs/device-protocol.md with one edge runner: the credential is
checked before accept (a refused handshake is an HTTP 403, family 10), frames are bounded in
size and rate (family 13), and every heartbeat re-reads the device row (revocation and targets
never depend on a channel-layer message alone, families 11 and 23). The database work lives in
``apps.devices.services.link``.

``DeviceLiveConsumer`` (``ws/teams/<team>/devices/<id>/live/``) forwards a watched device's
stream to a browser with the sequence numbers checked: a jump becomes an explicit ``gap`` frame,
never a silent hole (family 14).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from channels.consumer import get_handler_name
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import close_old_connections

from apps.core.consumers import CLOSE_NOT_FOUND, TeamScopedConsumer
from apps.devices.bus import (
    DEV_REPLY,
    LINK_COMMAND,
    WATCH_EVENT,
    device_watch_group_name,
    link_channel,
)
from apps.devices.services import link as service
from edge_runner.protocol import link

# A browser's watch lease and how often the browser side renews it.
WATCH_LEASE_SECONDS = 60.0
WATCH_RENEW_SECONDS = 20.0
# Developer-mode requests a link relays at once, and how long it waits for each answer (the
# agent gives the engine 30 s; the platform's caller waits as long).
DEV_PENDING_MAX = 16
DEV_PENDING_SECONDS = 35.0
T = TypeVar("T")


# The link's database work runs on a pool of threads of its own, not on the single shared
# thread ``database_sync_to_async`` uses by default: a fleet connecting at once (RELIABILITY
# family 25) would otherwise queue every device's authentication, claim and hello behind one
# thread (measured: p99 connect -> target 16 s for 200 devices on 2 ASGI processes). The pool
# stays below the database pool size (MANIFOLD_DATABASE_POOL_SIZE, default 10).
_LINK_DB_THREADS = 8
_link_executor: ThreadPoolExecutor | None = None


def _db(func: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """``func`` on the link's threads, with stale database connections closed before and
    after, as ``database_sync_to_async`` does, without its per-call machinery (asgiref's
    ``SyncToAsync`` cost 9 % of the ASGI processes' CPU while a fleet connected)."""

    async def call(*args: Any, **kwargs: Any) -> T:
        global _link_executor  # created lazily, once per process (after a fork)
        if _link_executor is None:
            _link_executor = ThreadPoolExecutor(_LINK_DB_THREADS, thread_name_prefix="device-link")
        context = contextvars.copy_context()
        work = functools.partial(context.run, _in_thread, func, args, kwargs)
        return await asyncio.get_running_loop().run_in_executor(_link_executor, work)

    return call


def _in_thread(func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    close_old_connections()
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()


def bearer_token(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


class TokenBucket:
    """``burst`` frames at once, refilled at ``rate`` per second."""

    def __init__(self, burst: float, rate: float) -> None:
        self.burst, self.rate = burst, rate
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class DeviceLinkConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels is untyped
    """One edge runner's live link."""

    session: service.LinkSession | None = None
    greeted = False
    closing = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every message, one hop through the
        # process's single sync thread each time (14 % of the CPU of a fleet connecting at
        # once). The link never touches the database on the event loop: its calls (``_db``)
        # run on threads of their own that close stale connections before and after.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    # ------------------------------------------------------------------ connection
    async def connect(self) -> None:
        raw = bearer_token(self.scope)
        session = await _db(service.link_authenticate)(raw)
        if session is None:
            reason = "no credential" if not raw else "invalid, revoked or decommissioned"
            await _db(service.link_refused)(raw, ip=self._ip(), reason=reason)
            await self.close()  # before accept: the server answers the handshake with 403
            return
        self.session = session
        self.bucket = TokenBucket(link.RATE_BURST, link.RATE_PER_SECOND)
        self.watchers: dict[str, float] = {}
        self.watch_sent_at = 0.0
        # request id -> (reply_to channel, expiry): who waits for which dev_result.
        self.dev_pending: dict[str, tuple[str, float]] = {}
        # Commands reach this socket through the device row once ``hello`` claimed it
        # (``Device.link_channel``): no group to join, no Redis round trip at connect.
        session.channel = self.channel_name
        await self.accept()

    def _ip(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    async def disconnect(self, code: int) -> None:
        session = self.session
        if session is None:
            return
        await _db(service.link_disconnected)(session)

    async def _close(self, code: int, reason: str) -> None:
        if self.closing or self.session is None:
            return
        self.closing = True
        await _db(service.link_closed)(self.session, code=code, reason=reason, ip=self._ip())
        await self.close(code=code)

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=link.encode(frame))

    async def _apply(self, reply: service.LinkReply) -> None:
        for frame in reply.frames:
            await self._send(frame)
        if reply.close_code is not None:
            if reply.close_code == link.CLOSE_DECOMMISSIONED:
                await self._send({"type": link.DECOMMISSION})
            await self._close(reply.close_code, "credential no longer valid")

    # ------------------------------------------------------------------ device -> platform
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing or self.session is None:
            return
        if text_data is None:
            await self._close(link.CLOSE_MALFORMED, "binary frame")
            return
        # Characters first (cheap), bytes only when it could matter; before any parsing.
        if len(text_data) > link.MAX_FRAME_BYTES or (
            len(text_data) * 4 > link.MAX_FRAME_BYTES
            and len(text_data.encode()) > link.MAX_FRAME_BYTES
        ):
            await self._close(link.CLOSE_TOO_BIG, "frame too big")
            return
        if not self.bucket.take():
            await self._close(link.CLOSE_RATE, "too many frames")
            return
        try:
            message = link.decode(text_data, allowed=link.DEVICE_TYPES)
            if (message["type"] == link.HELLO) == self.greeted:
                raise link.LinkError("hello must be the first frame, and only the first")
            await self._dispatch(message)
        except link.LinkError as error:
            await self._close(link.CLOSE_MALFORMED, str(error))

    async def _dispatch(self, message: dict[str, Any]) -> None:
        session = self.session
        if session is None:
            return
        kind = message["type"]
        if kind == link.HELLO:
            self.greeted = True
            reply, device = await _db(service.link_hello)(session, message)
            await self._apply(reply)
            if device is not None and not self.closing:
                record = await _db(service.link_hello_record)(device, message, self.channel_name)
                if record.reply is not None:
                    await self._apply(record.reply)
                    return
                if record.replaced is not None:
                    # One live link per device: the older socket (any process) closes with 4409.
                    await self.channel_layer.send(
                        record.replaced,
                        {"type": LINK_COMMAND, "command": "replaced", "channel": self.channel_name},
                    )
                if record.stale:
                    await self._apply(await _db(service.link_current_target)(session))
        elif kind == link.HEARTBEAT:
            reply = await _db(service.link_heartbeat)(session, message, time.monotonic())
            await self._apply(reply)
            await self._expire_watchers()
        elif kind == link.APPLY_RESULT:
            reply = await _db(service.link_apply_result)(session, message)
            await self._apply(reply)
        elif kind == link.STREAM:
            await self._relay_stream(message)
        elif kind == link.DEV_RESULT:
            await self._relay_dev_result(message)

    async def _relay_stream(self, message: dict[str, Any]) -> None:
        items = message["items"]
        if len(items) > link.MAX_STREAM_ITEMS:
            raise link.LinkError(f"stream: more than {link.MAX_STREAM_ITEMS} items")
        if not self.watchers:
            return  # nobody watches (a lease the device outlived): nothing to relay
        overflow = message.get("overflow")
        await self.channel_layer.group_send(
            device_watch_group_name(self.session.device_id),  # type: ignore[union-attr]  # set at connect
            {
                "type": WATCH_EVENT,
                "kind": "stream",
                "epoch": str(message.get("epoch", "")),
                "items": items,
                "overflow": overflow if isinstance(overflow, dict) else None,
            },
        )

    # ------------------------------------------------------------------ platform -> device
    async def device_command(self, message: dict[str, Any]) -> None:
        """Handler of ``bus.tell_device`` messages (and of a newer link of the same device)."""
        session = self.session
        if session is None or self.closing:
            return
        command = message.get("command")
        if command == "replaced":
            if message.get("channel") != self.channel_name:
                await self._close(link.CLOSE_REPLACED, "the device connected again")
        elif command in ("push_target", "recheck"):
            await self._apply(await _db(service.link_current_target)(session))
        elif command == "suspend":
            session.suspended = True
            await self._send({"type": link.SUSPEND})
        elif command == "resume":
            session.suspended = False
            await self._send({"type": link.RESUME})
            await self._apply(await _db(service.link_current_target)(session))
        elif command == "decommission":
            await self._send({"type": link.DECOMMISSION})
            await self._close(link.CLOSE_DECOMMISSIONED, "decommissioned")
        elif command == "revoked":
            await self._close(link.CLOSE_UNAUTHORIZED, "credential revoked")
        elif command == "watch":
            await self._watch(message)
        elif command == "dev_request":
            await self._dev_request(session, message)

    # ------------------------------------------------------------------ developer mode
    async def _dev_request(self, session: service.LinkSession, message: dict[str, Any]) -> None:
        """Relay one Admin API call to the device and remember who waits for its answer."""
        fields = [message.get(name) for name in ("request", "reply_to", "method", "path")]
        if not all(isinstance(value, str) and value for value in fields):
            return  # not a request of apps.devices.services.devmode: nobody to answer
        request, reply_to, method, path = (str(value) for value in fields)
        if session.suspended or not self.greeted:
            why = "suspended" if session.suspended else "still connecting"
            await self._dev_reply(
                reply_to,
                request,
                409,
                {"code": "device_unavailable", "message": f"The device is {why}."},
            )
            return
        now = time.monotonic()
        for pending, (_, until) in list(self.dev_pending.items()):
            if until < now:
                del self.dev_pending[pending]
        if len(self.dev_pending) >= DEV_PENDING_MAX:
            await self._dev_reply(
                reply_to,
                request,
                429,
                {
                    "code": "device_busy",
                    "message": f"{DEV_PENDING_MAX} developer requests are already waiting for "
                    "this device; try again when they are answered.",
                },
            )
            return
        self.dev_pending[request] = (reply_to, now + DEV_PENDING_SECONDS)
        await self._send(
            {
                "type": link.DEV_REQUEST,
                "request": request,
                "method": method,
                "path": path,
                "body": message.get("body"),
            }
        )

    async def _relay_dev_result(self, message: dict[str, Any]) -> None:
        pending = self.dev_pending.pop(message["request"], None)
        if pending is None or pending[1] < time.monotonic():
            await self._send(
                {"type": link.ERROR, "code": "unexpected", "message": "no request is pending"}
            )
            return
        request, status = message["request"], message["status"]
        await self._dev_reply(pending[0], request, status, message.get("body"))

    async def _dev_reply(self, reply_to: str, request: str, status: int, body: Any) -> None:
        reply = {"type": DEV_REPLY, "request": request, "status": status, "body": body}
        try:
            await self.channel_layer.send(reply_to, reply)
        except ChannelFull:  # a caller that stopped reading: nobody to tell
            return

    async def _watch(self, message: dict[str, Any]) -> None:
        watcher = str(message.get("watcher", ""))
        now = time.monotonic()
        since = message.get("since")
        if message.get("on"):
            first = not self.watchers
            self.watchers[watcher] = now + WATCH_LEASE_SECONDS
            # The device's lease is renewed at most every few seconds, at once for a first
            # watcher or a replay request (a browser that reconnected with ``since``).
            if first or since is not None or now - self.watch_sent_at > WATCH_RENEW_SECONDS / 2:
                frame: dict[str, Any] = {
                    "type": link.WATCH,
                    "on": True,
                    "lease_seconds": WATCH_LEASE_SECONDS,
                }
                if isinstance(since, int) and not isinstance(since, bool):
                    frame["since"] = since
                self.watch_sent_at = now
                await self._send(frame)
        elif self.watchers.pop(watcher, None) is not None and not self.watchers:
            await self._send({"type": link.WATCH, "on": False, "lease_seconds": 0})

    async def _expire_watchers(self) -> None:
        now = time.monotonic()
        expired = [name for name, until in self.watchers.items() if until < now]
        for name in expired:
            del self.watchers[name]
        if expired and not self.watchers:
            await self._send({"type": link.WATCH, "on": False, "lease_seconds": 0})


class DeviceLiveConsumer(TeamScopedConsumer):
    """A browser watching one device: its stream (gaps made explicit) and its state."""

    permission = "device:read"
    # Tests shorten it; the link's lease is WATCH_LEASE_SECONDS.
    renew_seconds: ClassVar[float] = WATCH_RENEW_SECONDS
    device_id = 0
    refusal: int | None = None
    epoch = ""
    last_seq: int | None = None
    _renew_task: asyncio.Task[None] | None = None

    async def team_connected(self) -> None:
        raw = self.scope["url_route"]["kwargs"].get("device_id")
        found = await _db(service.device_application_in_team)(self.team, raw)
        if found is None or not self.access.may_see(self.permission, found[1]):
            self.refusal = CLOSE_NOT_FOUND  # missing, foreign and hidden alike
            return
        self.device_id = found[0]
        query = dict(
            part.split("=", 1)
            for part in self.scope.get("query_string", b"").decode().split("&")
            if "=" in part
        )
        since = query.get("since", "")
        self.epoch = query.get("epoch", "")
        self.last_seq = int(since) if since.isdigit() else None
        await self.channel_layer.group_add(
            device_watch_group_name(self.device_id), self.channel_name
        )
        await self._tell_link(on=True, since=self.last_seq)

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol)
        if self.refusal is not None:
            await self.close(code=self.refusal)
            return
        if self.device_id:
            self._renew_task = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _tell_link(self, *, on: bool, since: int | None = None) -> None:
        # Looked up each time: the device may have reconnected on another socket since.
        channel = await _db(link_channel)(self.device_id)
        if not channel:
            return  # no live link: the next renewal tells the one that comes
        await self.channel_layer.send(
            channel,
            {
                "type": LINK_COMMAND,
                "command": "watch",
                "watcher": self.channel_name,
                "on": on,
                "since": since,
            },
        )

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.renew_seconds)
            await self._tell_link(on=True)

    async def disconnect(self, code: int) -> None:
        if self._renew_task is not None:
            self._renew_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renew_task
        if self.device_id and self.refusal is None:
            await self._tell_link(on=False)
            await self.channel_layer.group_discard(
                device_watch_group_name(self.device_id), self.channel_name
            )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send_json({"kind": "error", "message": "This socket only sends events."})

    async def device_watch_event(self, message: dict[str, Any]) -> None:
        """Handler of the link's relayed ``stream`` batches and of ``state`` changes."""
        if message.get("kind") == "state":
            await self.send_json({"kind": "state", "device": message.get("device")})
            return
        for frame in self.stream_frames(message):
            await self.send_json(frame)

    def stream_frames(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """The frames one batch becomes for this browser: items it has not seen yet, preceded
        by a ``gap`` frame wherever the sequence jumps (overflow or anything lost on the way)."""
        epoch = str(message.get("epoch", ""))
        if epoch != self.epoch:
            self.epoch, self.last_seq = epoch, None  # the agent restarted: a new numbering
        frames: list[dict[str, Any]] = []
        overflow = message.get("overflow") or {}
        first, last = overflow.get("first_seq"), overflow.get("last_seq")
        if (
            isinstance(first, int)
            and isinstance(last, int)
            and first <= last
            and (self.last_seq is None or last > self.last_seq)
        ):
            start = first if self.last_seq is None else max(first, self.last_seq + 1)
            frames.append(self._gap(start, last))
            self.last_seq = last
        fresh: list[Any] = []
        for item in message.get("items", []):
            seq = item.get("seq") if isinstance(item, dict) else None
            if not isinstance(seq, int) or (self.last_seq is not None and seq <= self.last_seq):
                continue
            if self.last_seq is not None and seq > self.last_seq + 1:
                if fresh:
                    frames.append(self._stream(fresh, message))
                    fresh = []
                frames.append(self._gap(self.last_seq + 1, seq - 1))
            fresh.append(item)
            self.last_seq = seq
        if fresh:
            frames.append(self._stream(fresh, message))
        return frames

    def _gap(self, start: int, end: int) -> dict[str, Any]:
        return {"kind": "gap", "missing": end - start + 1, "from_seq": start, "to_seq": end}

    def _stream(self, items: list[Any], message: dict[str, Any]) -> dict[str, Any]:
        return {"kind": "stream", "epoch": self.epoch, "items": items}
