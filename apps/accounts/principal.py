"""Who performs an action: a ``Principal``.

A principal is a user, a user through one of their access tokens, a device, or the system (a
Celery task, a management command, a sign-up through SSO). Services take one; views build it
with ``principal_from_request``; tasks use ``Principal.system("<job>")``. A token principal
carries its token, so the token's limits (read-only, team scope) keep applying wherever the
principal goes. ``device`` is built in for the devices app; other apps add kinds with
``register_principal_kind`` and build their principals with ``Principal.for_subject``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from django.http import HttpRequest
from rest_framework.request import Request

from apps.accounts.models import PersonalAccessToken, User
from apps.core.errors import PermissionDenied

USER: Final = "user"
TOKEN: Final = "token"  # noqa: S105  # a kind name, not a secret
DEVICE: Final = "device"
SYSTEM: Final = "system"
# The stored kind is the audit row's ``actor_type`` (10 characters).
KIND_MAX_LENGTH = 10
LABEL_MAX_LENGTH = 200

_KINDS: dict[str, str] = {
    USER: "User",
    TOKEN: "Personal access token",
    SYSTEM: "System",
    DEVICE: "Device",
}


def register_principal_kind(kind: str, label: str) -> None:
    """Add a kind of principal (idempotent for the same label)."""
    if not kind.isidentifier() or not kind.islower() or len(kind) > KIND_MAX_LENGTH:
        raise ValueError(
            f"Principal kind {kind!r}: a lower-case identifier of 1 to {KIND_MAX_LENGTH} characters"
        )
    known = _KINDS.get(kind)
    if known is not None and known != label:
        raise ValueError(f"Principal kind {kind!r} is already registered as {known!r}")
    _KINDS[kind] = label


class Subject(Protocol):
    """What a non-user principal (a device...) is built from: a row with a stable id."""

    @property
    def pk(self) -> Any: ...


@dataclass(frozen=True)
class Principal:
    """An actor as services see it. Build it with the ``for_*``/``system`` constructors."""

    kind: str
    # Stable identity on audit rows: the user, token or device id ("" for the system itself).
    identity: str
    label: str
    user: User | None = None
    token: PersonalAccessToken | None = None
    subject: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Unknown principal kind {self.kind!r}; register it first")
        object.__setattr__(self, "label", str(self.label)[:LABEL_MAX_LENGTH])

    # --- constructors ---------------------------------------------------------------------

    @classmethod
    def for_user(cls, user: User) -> Principal:
        return cls(USER, str(user.pk), _user_label(user), user=user)

    @classmethod
    def for_token(cls, token: PersonalAccessToken) -> Principal:
        label = f"{_user_label(token.user)} (token {token.prefix})"
        return cls(TOKEN, str(token.pk), label, user=token.user, token=token)

    @classmethod
    def system(cls, job: str = "") -> Principal:
        """The platform itself; ``job`` names the task or command (audited as the id)."""
        return cls(SYSTEM, job, f"system: {job}" if job else "system")

    @classmethod
    def anonymous(cls) -> Principal:
        """A visitor who is not signed in (a password reset request)."""
        return cls(SYSTEM, "", "anonymous")

    @classmethod
    def for_subject(cls, kind: str, subject: Subject, label: str) -> Principal:
        """A principal of a registered kind that is not a person, e.g. a device."""
        if kind in (USER, TOKEN, SYSTEM):
            raise ValueError(f"Use the dedicated constructor for {kind!r} principals")
        return cls(kind, str(subject.pk), label, subject=subject)

    # --- what services ask ----------------------------------------------------------------

    @property
    def is_person(self) -> bool:
        return self.user is not None

    @property
    def read_only(self) -> bool:
        """Acting through a read-only token."""
        return self.token is not None and self.token.read_only

    @property
    def team_scoped(self) -> bool:
        """Acting through a token limited to some teams: it acts only inside them."""
        return self.token is not None and not self.token.all_teams

    def require_writable(self, what: str = "do this") -> None:
        """Read-only tokens never write, wherever the write is (403)."""
        if self.read_only:
            raise PermissionDenied(f"Read-only tokens cannot {what}.")

    def require_unscoped(self, what: str = "do this") -> None:
        """Refuse (403) what reaches beyond a team-scoped token's teams: the account itself,
        its other tokens, other teams."""
        if self.team_scoped:
            raise PermissionDenied(
                f"This token is limited to some teams and cannot {what}; "
                "use a token for all your teams, or sign in."
            )

    def require_user(self, what: str = "do this") -> User:
        """The person behind the principal; devices and the system are refused (403)."""
        if self.user is None:
            raise PermissionDenied(f"Only a signed-in person can {what}.")
        return self.user


def _user_label(user: User) -> str:
    return str(user.email or user.get_username())


def principal_from_request(request: HttpRequest | Request) -> Principal:
    """The principal of a page or API request: the token when one authenticated the request
    (DRF sets ``request.auth``), else the signed-in user, else anonymous."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, PersonalAccessToken):
        return Principal.for_token(auth)
    user = getattr(request, "user", None)
    if isinstance(user, User) and user.is_authenticated:
        return Principal.for_user(user)
    return Principal.anonymous()
