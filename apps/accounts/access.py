"""Ids to objects, with the check: a token id belongs to the principal's user or does not exist;
other accounts are reached only by platform admins."""

from __future__ import annotations

from apps.accounts.models import PersonalAccessToken, User
from apps.accounts.principal import Principal
from apps.core.errors import NotFound, PermissionDenied
from apps.core.ids import parse_id
from apps.rbac.permissions import platform_allows


def access_token(principal: Principal, token_id: int | str) -> PersonalAccessToken:
    """The principal's own token by id; 404 alike for missing and someone else's."""
    pk = parse_id(token_id)
    token = None
    if pk is not None and principal.user is not None:
        token = PersonalAccessToken.objects.filter(pk=pk, user=principal.user).first()
    if token is None:
        raise NotFound("Token not found.")
    return token


def require_platform(principal: Principal, permission: str) -> User:
    """The principal's user if they hold the platform ``permission``; else 403 (the platform
    pages are no secret, so a plain "not allowed" is the honest answer)."""
    user = principal.user
    token = principal.token
    allowed = user is not None and platform_allows(
        user,
        permission,
        token_read_only=token is not None and token.read_only,
        token_all_teams=token is None or token.all_teams,
    )
    if user is None or not allowed:
        raise PermissionDenied(f"Only platform admins may do this ({permission!r}).")
    return user


def access_user(principal: Principal, user_id: int | str, permission: str) -> User:
    """Any account by id, for a platform admin holding ``permission``; 404 when missing."""
    require_platform(principal, permission)
    pk = parse_id(user_id)
    user = User.objects.filter(pk=pk).first() if pk is not None else None
    if user is None:
        raise NotFound("User not found.")
    return user
