"""Throttling of guessable credentials: sign-in, password-reset requests, token authentication.

Counters live in Django's cache (``CACHES["default"]``): Redis in production, so every web
process shares them; a file cache under the var folder in embedded mode, which every process of
the one machine shares too (its increments are not atomic across processes, so two racing
failures may count once: a throttle, not a ledger). Each kind counts per account and per client
IP in fixed windows; once either count reaches its limit, the next attempt is refused until the
window ends, the right password included, and the first refusal of a window is audited.

Token authentication counts per IP and per presented token prefix, never per user: failures with
someone's revoked or expired tokens must not lock out that user's valid tokens.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import transaction

from apps.accounts.principal import Principal
from apps.audit.services import AuditTarget, audit_record
from apps.core.audit_context import current_audit_context
from apps.core.errors import ManifoldError


@dataclass(frozen=True)
class Limit:
    """At most ``attempts`` per ``window_seconds``."""

    attempts: int
    window_seconds: int


@dataclass(frozen=True)
class ThrottleKind:
    """What is throttled, its audit event, its limits per account and per IP, and its words.

    ``account_scope`` names what the per-account count is keyed by (its audit ``scope``).
    """

    name: str
    event: str
    per_account: Limit
    per_ip: Limit
    refusal: str
    account_scope: str = "account"


LOGIN = ThrottleKind(
    "login",
    "account.login.throttled",
    per_account=Limit(5, 15 * 60),
    per_ip=Limit(30, 15 * 60),
    refusal="Too many failed sign-ins for this account or from your network",
)
PASSWORD_RESET = ThrottleKind(
    "password_reset",
    "account.password_reset.throttled",
    per_account=Limit(3, 60 * 60),
    per_ip=Limit(10, 60 * 60),
    refusal="Too many password-reset requests for this address or from your network",
)
TOKEN = ThrottleKind(
    "token",
    "account.token.throttled",
    per_account=Limit(10, 15 * 60),
    per_ip=Limit(30, 15 * 60),
    refusal="Too many failed token authentications from your network or with this token",
    account_scope="token_prefix",
)

SIGNUP = ThrottleKind(
    "signup",
    "account.signup.throttled",
    per_account=Limit(1, 60 * 60),  # unused: a new account has nothing to count against
    per_ip=Limit(10, 60 * 60),
    refusal="Too many new accounts from your network",
)


class Throttled(ManifoldError):  # noqa: N818  # the HTTP names read best
    """Too many attempts (429); ``retry_after`` is in seconds."""

    status_code = 429
    code = "throttled"

    def __init__(self, kind: ThrottleKind, retry_after: int) -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        unit = "minute" if minutes == 1 else "minutes"
        super().__init__(f"{kind.refusal}. Try again in {minutes} {unit}.")
        self.retry_after = retry_after


def _key(kind: ThrottleKind, scope: str, value: str, limit: Limit, now: float) -> str:
    # Hashed: cache keys never hold an address; the window number makes old counts expire.
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return f"throttle:{kind.name}:{scope}:{digest}:{int(now // limit.window_seconds)}"


def _scopes(kind: ThrottleKind, account: str | None) -> list[tuple[str, str, Limit]]:
    scopes = []
    if account:
        scopes.append((kind.account_scope, account, kind.per_account))
    ip = current_audit_context().ip
    if ip:
        scopes.append(("ip", ip, kind.per_ip))
    return scopes


def throttle_check(
    kind: ThrottleKind, *, account: str | None, target: Callable[[], Any] | None = None
) -> None:
    """Raise ``Throttled`` if the account or the client IP used up its attempts.

    The first refusal of a window writes ``kind.event`` on the platform chain (``target()``: the
    account, if known; never an address the visitor typed).
    """
    now = time.time()
    for scope, value, limit in _scopes(kind, account):
        key = _key(kind, scope, value, limit, now)
        if int(cache.get(key, 0)) < limit.attempts:
            continue
        retry_after = int(limit.window_seconds - now % limit.window_seconds) + 1
        if cache.add(f"{key}:audited", 1, limit.window_seconds):
            with transaction.atomic():
                audit_record(
                    event=kind.event,
                    principal=Principal.anonymous(),
                    team=None,
                    target=_target(target, scope),
                    after={
                        "scope": scope,
                        "attempts": limit.attempts,
                        "window_seconds": limit.window_seconds,
                    },
                )
        raise Throttled(kind, retry_after)


def _target(target: Callable[[], Any] | None, scope: str) -> Any:
    found = target() if target is not None else None
    return found if found is not None else AuditTarget(scope, "")


def throttle_count(kind: ThrottleKind, *, account: str | None) -> None:
    """Count one attempt (a failure, or for reset requests every request)."""
    now = time.time()
    for scope, value, limit in _scopes(kind, account):
        key = _key(kind, scope, value, limit, now)
        cache.add(key, 0, limit.window_seconds)
        try:
            cache.incr(key)
        except ValueError:
            # Expired between add and incr: this attempt starts the new window.
            cache.add(key, 1, limit.window_seconds)


def throttle_clear_account(kind: ThrottleKind, *, account: str) -> None:
    """A successful sign-in forgets the account's failures (the IP's count stays)."""
    limit = kind.per_account
    cache.delete(_key(kind, kind.account_scope, account, limit, time.time()))
