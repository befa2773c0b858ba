"""DRF authentication with ``Authorization: Bearer mfp_...`` personal access tokens.

Set ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]`` to this class followed by
``apps.accounts.authentication.SessionAuthentication``, and add ``ReadOnlyTokensDoNotWrite`` to
the default permission classes. ``request.auth`` is the token; views pass
it as the actor so the token's scope limits what the user's role allows.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from apps.accounts.models import TOKEN_PREFIX, PersonalAccessToken, User
from apps.accounts.services import hash_token
from apps.accounts.throttle import TOKEN, throttle_check, throttle_count

# Writing last_used on every request would turn every read into a write; a minute is precise
# enough to spot unused tokens.
LAST_USED_RESOLUTION = timedelta(seconds=60)


_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6  # as stored in PersonalAccessToken.prefix
_PRINTABLE_PREFIX = re.compile(r"^[A-Za-z0-9_-]+$")


def presented_prefix(raw: str) -> str | None:
    """The throttling key of a presented token: the prefix a stored token would show, or None
    for text that could not be one of ours (such guesses count per IP only)."""
    prefix = raw[:_PREFIX_LENGTH]
    if len(prefix) < _PREFIX_LENGTH or not prefix.startswith(TOKEN_PREFIX):
        return None
    return prefix if _PRINTABLE_PREFIX.match(prefix) else None


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Personal access tokens; invalid, expired and revoked tokens all answer 401 alike."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, PersonalAccessToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        # Guessing tokens from one address ends here (429), before any lookup.
        throttle_check(TOKEN, account=None)
        token = None
        if raw.startswith(TOKEN_PREFIX):
            token = (
                PersonalAccessToken.objects.select_related("user")
                .filter(token_hash=hash_token(raw))
                .first()
            )
        if token is None or not token.is_active or not token.user.is_active:
            # Counted per IP and per presented prefix, never per user: a user's valid tokens
            # keep working whatever their revoked ones are doing. A valid token never reaches
            # this branch, so a prefix shared with a hammered one cannot lock it out either.
            prefix = presented_prefix(raw)
            found = token
            throttle_check(TOKEN, account=prefix, target=lambda: found)
            throttle_count(TOKEN, account=prefix)
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class SessionAuthentication(authentication.SessionAuthentication):
    """Django sessions with DRF's CSRF enforcement (the browser UI and htmx)."""


class ReadOnlyTokensDoNotWrite(permissions.BasePermission):
    """A read-only token is refused every unsafe method, on every endpoint, before any handler.

    Services check ``Principal.require_writable`` too; this guard holds for an endpoint whose
    service forgot to.
    """

    message = "Read-only tokens cannot change anything."

    def has_permission(self, request: Request, view: object) -> bool:
        token = request.auth
        if isinstance(token, PersonalAccessToken) and token.read_only:
            return request.method in permissions.SAFE_METHODS
        return True
