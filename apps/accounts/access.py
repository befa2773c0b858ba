"""Ids to objects, with the check: a token id belongs to the actor's user or does not exist."""

from __future__ import annotations

from apps.accounts.actors import Actor, actor_user
from apps.accounts.models import PersonalAccessToken
from apps.core.errors import NotFound
from apps.core.ids import parse_id


def access_token(actor: Actor, token_id: int | str) -> PersonalAccessToken:
    """The actor's own token by id; 404 alike for missing and someone else's."""
    pk = parse_id(token_id)
    token = None
    if pk is not None:
        token = PersonalAccessToken.objects.filter(pk=pk, user=actor_user(actor)).first()
    if token is None:
        raise NotFound("Token not found.")
    return token
