"""Websocket consumers scoped to a team.

``TeamScopedConsumer`` is the only base for team websockets. It resolves the team from the URL
slug through ``apps.teams.access.access_team`` with the permission the subclass names, and
closes BEFORE accepting: 4403 for anonymous users and members without the permission, 4404 for
missing and foreign teams alike (the two are never told apart). Subclasses cannot override
``connect``; they add their setup in ``team_connected``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core.errors import NotFound, PermissionDenied
from apps.core.realtime import team_group_name
from apps.rbac.permissions import PERMISSIONS

CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def _access_team(user: Any, team_slug: str, permission: str) -> Any:
    # Imported here: the teams app imports core, and core must not import teams at load time.
    from apps.teams.access import access_team

    return access_team(user, team_slug, permission)


class TeamScopedConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]  # channels is untyped
    """Base of every team websocket: names its permission, checks it before accepting."""

    permission: ClassVar[str]
    team: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "connect" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides connect(); put setup in team_connected() so the "
                "team and permission check cannot be skipped."
            )
        permission = getattr(cls, "permission", None)
        if permission not in PERMISSIONS:
            raise TypeError(f"{cls.__name__}.permission must name a key of PERMISSIONS.")

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        team_slug = self.scope["url_route"]["kwargs"].get("team_slug", "")
        try:
            self.team = await database_sync_to_async(_access_team)(user, team_slug, self.permission)
        except NotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except PermissionDenied:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.team_connected()
        await self.accept()

    async def team_connected(self) -> None:
        """Hook for subclasses: runs after the access check, before ``accept``."""


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

    async def team_event(self, message: dict[str, Any]) -> None:
        """Handler for ``{"type": "team.event"}`` messages from ``broadcast_team_event``."""
        await self.send_json({"kind": message["kind"], "payload": message["payload"]})
