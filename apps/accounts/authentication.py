"""DRF authentication with ``Authorization: Bearer mfp_...`` personal access tokens.

Set ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]`` to this class followed by
``apps.accounts.authentication.SessionAuthentication``, and add ``ReadOnlyTokensDoNotWrite`` to
the default permission classes. ``request.auth`` is the token; views pass
it as the actor so the token's scope limits what the user's role allows.
"""

from __future__ import annotations

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
        if not raw.startswith(TOKEN_PREFIX):
            throttle_count(TOKEN, account=None)
            raise exceptions.AuthenticationFailed("Invalid token.")
        token = (
            PersonalAccessToken.objects.select_related("user")
            .filter(token_hash=hash_token(raw))
            .first()
        )
        account = None
        if token is not None:
            account = str(token.user_id)
            owner = token.user
            throttle_check(TOKEN, account=account, target=lambda: owner)
        if token is None or not token.is_active or not token.user.is_active:
            throttle_count(TOKEN, account=account)
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
