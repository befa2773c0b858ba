"""Websocket consumers scoped to a team.

``TeamScopedConsumer`` is the only base for team websockets. It resolves the team from the URL
slug through the team resolver the teams app registers (``register_team_resolver``: core sits
below teams and never imports it) with the permission the subclass names, and refuses before
joining any group: 4403 for anonymous users and members without the permission, 4404 for
missing and foreign teams alike (the two are never told apart). A refusal accepts the handshake
and closes at once with the code: closing before accept makes the server answer the handshake
with HTTP 403, the browser then sees only 1006 and cannot tell "refused" (stop) from "lost"
(reconnect). Subclasses cannot override ``connect`` or ``websocket_disconnect``; they add setup
in ``team_connected``.

Access is not only checked once: an open socket re-runs the check when the team's access
changes (``apps.core.realtime.notify_team_access_changed``, sent by membership services) and,
because group messages can be lost (Redis restart, full channel), every ``recheck_seconds`` as a
backstop. A failed re-check closes the socket with 4403.

Each socket keeps the access its re-check resolved (role, custom role, application overrides)
and ``TeamEventsConsumer`` forwards an event only when that access may see it: the event's
permission key, and never an application the user has "no access" to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import ImproperlyConfigured

from apps.core.errors import NotFound, PermissionDenied
from apps.core.realtime import DEFAULT_EVENT_PERMISSION, team_access_group_name, team_group_name
from apps.rbac.permissions import PERMISSIONS

CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
# Sent to one socket whose user's own access in the team changed (and still allows the socket).
ACCESS_CHANGED_EVENT = "team.access.changed"
_SEALED = ("connect", "websocket_disconnect")


class SocketAccess(Protocol):
    """What the team resolver returns: the team, and what its user may see in it (answered
    from memory: the resolver loads everything it needs, since consumers run on the event loop)."""

    @property
    def team(self) -> Any: ...

    def may_see(self, permission: str, application_id: int | None = None) -> bool: ...

    def fingerprint(self) -> tuple[object, ...]:
        """Changes whenever what the user may do or see in the team changes (role and the like)."""
        ...


# (user, team slug, permission key) -> access; raises NotFound / PermissionDenied.
TeamResolver = Callable[[Any, str, str], SocketAccess]
_resolvers: list[TeamResolver] = []


def register_team_resolver(resolver: TeamResolver) -> None:
    """Called once by the teams app (``AppConfig.ready``); a second call replaces the first."""
    _resolvers[:] = [resolver]


def _access_team(user: Any, team_slug: str, permission: str) -> SocketAccess:
    if not _resolvers:
        raise ImproperlyConfigured("No team resolver registered: is apps.teams installed?")
    return _resolvers[0](user, team_slug, permission)


def _still_allowed(user: Any, team_slug: str, permission: str) -> SocketAccess | None:
    # The scope's user was loaded at connect: reload it so deactivation is seen too.
    user.refresh_from_db()
    if not user.is_active:
        return None
    try:
        return _access_team(user, team_slug, permission)
    except (NotFound, PermissionDenied):
        return None


class TeamScopedConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]  # channels is untyped
    """Base of every team websocket: names its permission, checks it before accepting."""

    permission: ClassVar[str]
    # Backstop for lost access-change messages; STACK.md: group sends alone are not reliable.
    recheck_seconds: ClassVar[float] = 30.0
    team: Any
    access: SocketAccess
    team_slug = ""
    _access_group = ""
    _recheck_task: asyncio.Task[None] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _SEALED:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}(); put setup in team_connected() and "
                    "cleanup in disconnect() so the team and permission checks cannot be skipped."
                )
        permission = getattr(cls, "permission", None)
        if permission not in PERMISSIONS:
            raise TypeError(f"{cls.__name__}.permission must name a key of PERMISSIONS.")

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_FORBIDDEN)
            return
        self.team_slug = self.scope["url_route"]["kwargs"].get("team_slug", "")
        try:
            self.access = await database_sync_to_async(_access_team)(
                user, self.team_slug, self.permission
            )
        except NotFound:
            await self._refuse(CLOSE_NOT_FOUND)
            return
        except PermissionDenied:
            await self._refuse(CLOSE_FORBIDDEN)
            return
        self.team = self.access.team
        self._access_group = team_access_group_name(self.team.id)
        await self.channel_layer.group_add(self._access_group, self.channel_name)
        await self.team_connected()
        await self.accept()
        self._recheck_task = asyncio.get_running_loop().create_task(self._recheck_forever())

    async def _refuse(self, code: int) -> None:
        # Accepted only to carry the close code; no group was joined, nothing is ever sent.
        await self.accept()
        await self.close(code=code)

    async def team_connected(self) -> None:
        """Hook for subclasses: runs after the access check, before ``accept``."""

    async def team_access_changed(self, message: dict[str, Any]) -> None:
        """Handler for ``notify_team_access_changed``: re-check now, close if no longer allowed."""
        await self._recheck()

    async def _recheck(self) -> bool:
        access = await database_sync_to_async(_still_allowed)(
            self.scope["user"], self.team_slug, self.permission
        )
        if access is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        # A role or override change alters what this socket may see, not only whether it stays.
        changed = access.fingerprint() != self.access.fingerprint()
        self.access = access
        if changed:
            await self.own_access_changed()
        return True

    async def own_access_changed(self) -> None:
        """Hook for subclasses: the user keeps the socket, but their access in the team changed."""

    async def _recheck_forever(self) -> None:
        while True:
            await asyncio.sleep(self.recheck_seconds)
            if not await self._recheck():
                return

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self._recheck_task is not None:
            self._recheck_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recheck_task
        if self._access_group:
            await self.channel_layer.group_discard(self._access_group, self.channel_name)
        await super().websocket_disconnect(message)


class TeamEventsConsumer(TeamScopedConsumer):
    """``/ws/teams/<team_slug>/events/``: forwards ``broadcast_team_event`` messages as JSON."""

    permission = "team:read"
    group_name = ""

    async def team_connected(self) -> None:
        self.group_name = team_group_name(self.team.id)
        await self.channel_layer.group_add(self.group_name, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The stream is server-to-browser; answer anything else explicitly instead of ignoring it.
        await self.send_json({"error": "This socket only sends events."})

    async def own_access_changed(self) -> None:
        # The page shows the user's own role (the dashboard badge, what they may click): tell it
        # to re-read, since no audit event reaches a user who lost audit:read.
        await self.send_json({"kind": ACCESS_CHANGED_EVENT, "payload": {}})

    async def team_event(self, message: dict[str, Any]) -> None:
        """Handler for ``{"type": "team.event"}`` messages from ``broadcast_team_event``:
        forwarded only if this socket's access may see the event."""
        permission = message.get("permission", DEFAULT_EVENT_PERMISSION)
        if not self.access.may_see(permission, message.get("application_id")):
            return
        await self.send_json({"kind": message["kind"], "payload": message["payload"]})
