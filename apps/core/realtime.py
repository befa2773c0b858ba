"""Push events to the browsers watching a team, after the write that caused them commits.

``broadcast_team_event(team_id, kind, payload)`` is the one entry point for services: call it
inside the service's transaction; the group send happens on commit (never for a rolled-back
write), and a failing channel layer is logged, never raised into the committed request.

The send itself never runs in the request: on commit the message is queued for one sender thread
per process, which sends in order on its own event loop. A group of 2000 sockets then costs the
request nothing (it used to: 49 ms per POST at 250 sockets, 328 ms at 2000). Queued messages are
flushed at interpreter exit (management commands, worker shutdown).

Group sends are best effort (see STACK.md: Redis drops past capacity and forgets groups on
restart), so events tell browsers *that* something changed; the truth stays in the database.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any

from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from apps.rbac.permissions import PERMISSIONS

logger = logging.getLogger(__name__)

# The consumer method that handles these messages: TeamEventsConsumer.team_event.
TEAM_EVENT_TYPE = "team.event"
# The consumer method that re-checks access: TeamScopedConsumer.team_access_changed.
ACCESS_CHANGED_TYPE = "team.access_changed"
_JSON = DjangoJSONEncoder()
# What an event needs when its sender names nothing stricter: being a member of the team.
DEFAULT_EVENT_PERMISSION = "team:read"


def team_group_name(team_id: int) -> str:
    """Channels group of everyone connected to team ``team_id``'s event stream."""
    if isinstance(team_id, bool) or not isinstance(team_id, int) or team_id <= 0:
        raise ValueError(f"team_id must be a positive integer, got {team_id!r}.")
    return f"team-{team_id}"


def team_access_group_name(team_id: int) -> str:
    """Group of every team-scoped socket of team ``team_id``, told when access may have changed."""
    return f"{team_group_name(team_id)}-access"


def notify_team_access_changed(team_id: int) -> None:
    """On commit, make every open socket of the team re-check its user's access.

    Call it from any service that can take access away: member removed or leaving, role or
    custom role changed, application override changed, user deactivated (once per team), team
    deleted. Sockets whose user lost the consumer's permission close with 4403.
    """
    group = team_access_group_name(team_id)
    message = {"type": ACCESS_CHANGED_TYPE, "kind": ""}
    transaction.on_commit(lambda: _SENDER.submit(group, message))


def _normalise(payload: Mapping[str, Any]) -> Any:
    # Round-trip through JSON so dates/UUIDs/Decimals become what the browser will see, and a
    # payload that cannot be sent fails now, in the caller's transaction, not later on commit.
    return json.loads(_JSON.encode(dict(payload)))


def broadcast_team_event(
    team_id: int,
    kind: str,
    payload: Mapping[str, Any],
    *,
    permission: str = DEFAULT_EVENT_PERMISSION,
    application_id: int | None = None,
) -> None:
    """Send ``{"kind": kind, "payload": payload}`` to team ``team_id``'s sockets on commit.

    ``kind`` is the dotted audit-style event name (``"team.member.added"``). Only sockets whose
    user holds ``permission`` receive it, and, for an event about one application
    (``application_id``), only those not shut out of that application. Raises
    ``ValueError``/``TypeError`` at once for a bad team id, kind, key or unserialisable payload.
    """
    group = team_group_name(team_id)
    if not isinstance(kind, str) or not kind or len(kind) > 200:
        raise ValueError("kind must be a non-empty string of at most 200 characters.")
    if not isinstance(payload, Mapping):
        raise TypeError("payload must be a mapping.")
    if permission not in PERMISSIONS:
        raise ValueError(f"permission must name a key of PERMISSIONS, got {permission!r}.")
    if application_id is not None and (
        isinstance(application_id, bool) or not isinstance(application_id, int)
    ):
        raise ValueError(f"application_id must be an integer, got {application_id!r}.")
    message = {
        "type": TEAM_EVENT_TYPE,
        "kind": kind,
        "payload": _normalise(payload),
        "permission": permission,
        "application_id": application_id,
    }
    transaction.on_commit(lambda: _SENDER.submit(group, message))


def send_group_on_commit(group: str, message: Mapping[str, Any]) -> None:
    """Send a channel-layer ``message`` (with its ``type`` handler name) to ``group`` once the
    current transaction commits (at once outside one), through the same sender thread. For
    groups other than a team's (a device's link, a device's watchers)."""
    if not isinstance(message.get("type"), str):
        raise ValueError("a channel-layer message needs a 'type'")
    payload = _normalise(message)
    transaction.on_commit(lambda: _SENDER.submit(group, payload))


def send_channel_on_commit(channel: str, message: Mapping[str, Any]) -> None:
    """``send_group_on_commit`` for one consumer's own channel (a device's live link)."""
    if not isinstance(message.get("type"), str):
        raise ValueError("a channel-layer message needs a 'type'")
    if not isinstance(channel, str) or not channel:
        raise ValueError("a channel name is a non-empty string")
    payload = _normalise(message)
    transaction.on_commit(lambda: _SENDER.submit_channel(channel, payload))


class _Sender:
    """One daemon thread per process with its own event loop, sending queued messages to
    groups and channels, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[str, dict[str, Any], bool]] | None = None

    def submit(self, group: str, message: dict[str, Any]) -> None:
        loop, queue = self._started()
        loop.call_soon_threadsafe(queue.put_nowait, (group, message, False))

    def submit_channel(self, channel: str, message: dict[str, Any]) -> None:
        loop, queue = self._started()
        loop.call_soon_threadsafe(queue.put_nowait, (channel, message, True))

    def flush(self, timeout: float) -> bool:
        """Wait until every queued message was sent (or failed); False after ``timeout``."""
        with self._lock:
            loop, queue = self._loop, self._queue
        if loop is None or queue is None or self._pid != os.getpid() or not loop.is_running():
            return True
        future = asyncio.run_coroutine_threadsafe(queue.join(), loop)
        try:
            future.result(timeout)
        except FutureTimeoutError:
            future.cancel()
            return False
        return True

    def _started(
        self,
    ) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[tuple[str, dict[str, Any], bool]]]:
        with self._lock:
            # A forked child (Celery prefork) inherits the objects but not the thread.
            if self._loop is None or self._queue is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                queue: asyncio.Queue[tuple[str, dict[str, Any], bool]] = asyncio.Queue()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(loop, queue, ready), name="realtime-sender", daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._queue, self._pid = loop, queue, os.getpid()
            return self._loop, self._queue

    @staticmethod
    def _run(
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[tuple[str, dict[str, Any], bool]],
        ready: threading.Event,
    ) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_until_complete(_send_forever(queue))


async def _send_forever(queue: asyncio.Queue[tuple[str, dict[str, Any], bool]]) -> None:
    while True:
        name, message, is_channel = await queue.get()
        try:
            await _layer_send(name, message, is_channel=is_channel)
        finally:
            queue.task_done()


async def _layer_send(name: str, message: dict[str, Any], *, is_channel: bool) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if is_channel:
            await layer.send(name, message)
        else:
            await layer.group_send(name, message)
    except Exception:
        # The write is committed; a lost notification must not turn into an error anywhere
        # (a full or gone channel included: its reader heals from the database).
        logger.exception(
            "realtime: send to %s %s failed (kind=%s)",
            "channel" if is_channel else "group",
            name,
            message.get("kind", message["type"]),
        )


_SENDER = _Sender()
# Flush before the interpreter's thread pools shut down: concurrent.futures refuses new work from
# threading's own exit hooks on, and the SQLite channel layer sends through a pool thread (a
# management command's events were lost with "cannot schedule new futures after shutdown").
# threading runs these hooks newest first, so ours (registered after concurrent.futures was
# imported) runs before the pools close; atexit stays as the fallback.
_register_thread_exit = getattr(threading, "_register_atexit", None)
if _register_thread_exit is not None:
    _register_thread_exit(_SENDER.flush, 5.0)
atexit.register(_SENDER.flush, 5.0)


def flush_pending(timeout: float = 5.0) -> bool:
    """Block until this process's queued group sends are done; False after ``timeout`` s."""
    return _SENDER.flush(timeout)
