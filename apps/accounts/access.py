"""Ids to objects, with the check: a token id belongs to the actor's user or does not exist."""

from __future__ import annotations

from apps.accounts.actors import Actor, actor_user
from apps.accounts.models import PersonalAccessToken
from apps.core.errors import NotFound


def access_token(actor: Actor, token_id: int | str) -> PersonalAccessToken:
    """The actor's own token by id; 404 alike for missing and someone else's."""
    try:
        return PersonalAccessToken.objects.get(pk=int(token_id), user=actor_user(actor))
    except (PersonalAccessToken.DoesNotExist, ValueError, TypeError):
        raise NotFound("Token not found.") from None
