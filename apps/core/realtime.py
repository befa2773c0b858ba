"""Push events to the browsers watching a team, after the write that caused them commits.

``broadcast_team_event(team_id, kind, payload)`` is the one entry point for services: call it
inside the service's transaction; the group send happens on commit (never for a rolled-back
write), and a failing channel layer is logged, never raised into the committed request.

Group sends are best effort (see STACK.md: Redis drops past capacity and forgets groups on
restart), so events tell browsers *that* something changed; the truth stays in the database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)

# The consumer method that handles these messages: TeamEventsConsumer.team_event.
TEAM_EVENT_TYPE = "team.event"
# The consumer method that re-checks access: TeamScopedConsumer.team_access_changed.
ACCESS_CHANGED_TYPE = "team.access_changed"
_JSON = DjangoJSONEncoder()


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
    transaction.on_commit(lambda: _group_send(group, {"type": ACCESS_CHANGED_TYPE, "kind": ""}))


def _normalise(payload: Mapping[str, Any]) -> Any:
    # Round-trip through JSON so dates/UUIDs/Decimals become what the browser will see, and a
    # payload that cannot be sent fails now, in the caller's transaction, not later on commit.
    return json.loads(_JSON.encode(dict(payload)))


def broadcast_team_event(team_id: int, kind: str, payload: Mapping[str, Any]) -> None:
    """Send ``{"kind": kind, "payload": payload}`` to team ``team_id``'s sockets on commit.

    ``kind`` is the dotted audit-style event name (``"team.member.added"``). Raises
    ``ValueError``/``TypeError`` at once for a bad team id, kind or unserialisable payload.
    """
    group = team_group_name(team_id)
    if not isinstance(kind, str) or not kind or len(kind) > 200:
        raise ValueError("kind must be a non-empty string of at most 200 characters.")
    if not isinstance(payload, Mapping):
        raise TypeError("payload must be a mapping.")
    message = {"type": TEAM_EVENT_TYPE, "kind": kind, "payload": _normalise(payload)}
    transaction.on_commit(lambda: _group_send(group, message))


def _group_send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        # The write is committed; a lost notification must not turn it into a 500.
        logger.exception("realtime: group_send to %s failed (kind=%s)", group, message["kind"])
