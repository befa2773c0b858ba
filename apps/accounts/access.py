"""Ids to objects, with the check: a token id belongs to the actor's user or does not exist;
other accounts are reached only by platform admins."""

from __future__ import annotations

from apps.accounts.actors import Actor, actor_token, actor_user
from apps.accounts.models import PersonalAccessToken, User
from apps.core.errors import NotFound, PermissionDenied
from apps.core.ids import parse_id
from apps.rbac.permissions import platform_allows


def access_token(actor: Actor, token_id: int | str) -> PersonalAccessToken:
    """The actor's own token by id; 404 alike for missing and someone else's."""
    pk = parse_id(token_id)
    token = None
    if pk is not None:
        token = PersonalAccessToken.objects.filter(pk=pk, user=actor_user(actor)).first()
    if token is None:
        raise NotFound("Token not found.")
    return token


def require_platform(actor: Actor, permission: str) -> User:
    """The actor's user if they hold the platform ``permission``; else 403 (the platform pages
    are no secret, so a plain "not allowed" is the honest answer)."""
    user = actor_user(actor)
    token = actor_token(actor)
    allowed = getattr(user, "is_authenticated", False) and platform_allows(
        user,
        permission,
        token_read_only=token is not None and token.read_only,
        token_all_teams=token is None or token.all_teams,
    )
    if not allowed:
        raise PermissionDenied(f"Only platform admins may do this ({permission!r}).")
    return user


def access_user(actor: Actor, user_id: int | str, permission: str) -> User:
    """Any account by id, for a platform admin holding ``permission``; 404 when missing."""
    require_platform(actor, permission)
    pk = parse_id(user_id)
    user = User.objects.filter(pk=pk).first() if pk is not None else None
    if user is None:
        raise NotFound("User not found.")
    return user
