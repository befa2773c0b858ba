"""Who performs an action: a signed-in user, or a user through one of their access tokens."""

from __future__ import annotations

from typing import TypeAlias

from apps.accounts.models import PersonalAccessToken, User

Actor: TypeAlias = User | PersonalAccessToken


def actor_user(actor: Actor) -> User:
    """The person behind the actor."""
    return actor.user if isinstance(actor, PersonalAccessToken) else actor


def actor_token(actor: Actor) -> PersonalAccessToken | None:
    """The token the actor acts through, if any."""
    return actor if isinstance(actor, PersonalAccessToken) else None
