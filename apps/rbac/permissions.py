"""Roles and the one permission table. Pure logic: no database access.

Every view, API endpoint, websocket consumer and Celery task names one key of ``PERMISSIONS``;
``role_allows`` is the only function that answers whether a role (or custom role) grants it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol


class Role:
    """Team roles, highest first (as FlowFuse: owner > member > viewer > dashboard)."""

    OWNER: Final = "owner"
    MEMBER: Final = "member"
    VIEWER: Final = "viewer"
    DASHBOARD: Final = "dashboard"


ROLES: Final[tuple[str, ...]] = (Role.OWNER, Role.MEMBER, Role.VIEWER, Role.DASHBOARD)
ROLE_RANK: Final[dict[str, int]] = {
    Role.OWNER: 40,
    Role.MEMBER: 30,
    Role.VIEWER: 20,
    Role.DASHBOARD: 10,
}
ROLE_CHOICES: Final[list[tuple[str, str]]] = [(role, role.capitalize()) for role in ROLES]

# An application override may also say "this member has no access to this application".
NO_ACCESS: Final = "none"
OVERRIDE_ROLES: Final[tuple[str, ...]] = (Role.MEMBER, Role.VIEWER, Role.DASHBOARD, NO_ACCESS)
OVERRIDE_CHOICES: Final[list[tuple[str, str]]] = [
    (Role.MEMBER, "Member"),
    (Role.VIEWER, "Viewer"),
    (Role.DASHBOARD, "Dashboard"),
    (NO_ACCESS, "No access"),
]


@dataclass(frozen=True)
class PermissionSpec:
    """One row of the permission table."""

    minimum_role: str
    description: str
    # Read-only tokens may use only these; they never change state.
    read_only: bool = False
    # Application-scoped permissions honour per-application overrides.
    application_scoped: bool = False


PERMISSIONS: Final[dict[str, PermissionSpec]] = {
    # team
    "team:read": PermissionSpec(Role.DASHBOARD, "See the team", read_only=True),
    "team:edit": PermissionSpec(Role.OWNER, "Rename the team"),
    "team:delete": PermissionSpec(Role.OWNER, "Delete the team and everything in it"),
    # members, invitations, roles
    "member:read": PermissionSpec(Role.VIEWER, "List members and their roles", read_only=True),
    "member:invite": PermissionSpec(Role.OWNER, "Invite people, list and revoke invitations"),
    "member:invite_owner": PermissionSpec(Role.OWNER, "Invite people as team owners"),
    "member:remove": PermissionSpec(Role.OWNER, "Remove a member from the team"),
    "member:role": PermissionSpec(Role.OWNER, "Change roles and application overrides"),
    "customrole:read": PermissionSpec(Role.MEMBER, "List custom roles", read_only=True),
    "customrole:manage": PermissionSpec(Role.OWNER, "Define and delete custom roles"),
    # applications
    "application:read": PermissionSpec(
        Role.DASHBOARD, "See applications", read_only=True, application_scoped=True
    ),
    "application:create": PermissionSpec(Role.OWNER, "Create applications"),
    "application:edit": PermissionSpec(Role.OWNER, "Edit applications", application_scoped=True),
    "application:delete": PermissionSpec(
        Role.OWNER, "Delete applications", application_scoped=True
    ),
    # audit trail
    "audit:read": PermissionSpec(Role.MEMBER, "Read the audit log", read_only=True),
    "audit:export": PermissionSpec(Role.OWNER, "Export the audit log", read_only=True),
    # personal, not team-bound: every signed-in user manages their own tokens
    "token:manage": PermissionSpec(Role.DASHBOARD, "Manage own access tokens"),
    # checked by address, not by role: only the invited email can answer an invitation
    "invitation:respond": PermissionSpec(Role.DASHBOARD, "Answer an invitation sent to you"),
    # later issues: flows, snapshots, pipelines, devices, SSO, models
    "dashboard:view": PermissionSpec(
        Role.DASHBOARD, "Open dashboards", read_only=True, application_scoped=True
    ),
    "flow:read": PermissionSpec(
        Role.VIEWER, "See flows and debug output", read_only=True, application_scoped=True
    ),
    "flow:edit": PermissionSpec(Role.MEMBER, "Edit flows", application_scoped=True),
    "flow:deploy": PermissionSpec(Role.MEMBER, "Deploy flows", application_scoped=True),
    "snapshot:create": PermissionSpec(Role.MEMBER, "Create snapshots", application_scoped=True),
    "pipeline:promote": PermissionSpec(
        Role.OWNER, "Promote a snapshot along a pipeline", application_scoped=True
    ),
    "device:read": PermissionSpec(
        Role.VIEWER, "See devices and their state", read_only=True, application_scoped=True
    ),
    "device:manage": PermissionSpec(
        Role.MEMBER, "Register, assign and remove devices", application_scoped=True
    ),
    "device:develop": PermissionSpec(
        Role.MEMBER,
        "Edit one device's flows live in developer mode",
        application_scoped=True,
    ),
    "sso:manage": PermissionSpec(Role.OWNER, "Configure single sign-on"),
    "model:read": PermissionSpec(Role.VIEWER, "See the team's AI models", read_only=True),
    "model:manage": PermissionSpec(
        Role.MEMBER, "Upload and retire AI models", application_scoped=True
    ),
}

# Installation-wide keys, held by ``User.is_platform_admin`` alone and never by a team role,
# a custom role or an application override. They reach names and counts of users and teams and
# account switches; no team data: team pages and API still need a membership (tenancy is strict).
PLATFORM_PERMISSIONS: Final[dict[str, str]] = {
    "platform:read": "List every user and team with their counts",
    "platform:user_manage": "Deactivate and reactivate user accounts",
    "platform:settings_manage": "Choose whether people may sign up without an invitation",
}
PLATFORM_READ_ONLY: Final[frozenset[str]] = frozenset({"platform:read"})


class PlatformSubject(Protocol):
    """What ``platform_allows`` reads of a user (kept a protocol: this module stays pure)."""

    @property
    def is_active(self) -> bool: ...

    @property
    def is_platform_admin(self) -> bool: ...


def platform_allows(
    user: PlatformSubject | None,
    permission: str,
    *,
    token_read_only: bool = False,
    token_all_teams: bool = True,
) -> bool:
    """The one answer to "may this user use this platform key?".

    Only active platform admins; through a token, only an unrestricted (all-teams) one, and a
    read-only token only for reads.
    """
    if permission not in PLATFORM_PERMISSIONS:
        raise UnknownPermissionError(f"Unknown platform permission key {permission!r}")
    if user is None or not user.is_active or not user.is_platform_admin:
        return False
    if not token_all_teams:
        return False
    return not (token_read_only and permission not in PLATFORM_READ_ONLY)


# Custom roles may hold any key except the ones that govern the team itself: a custom role that
# could change roles, define roles, invite owners or remove members (owners among them) would let
# its holder take the team over. Only a full owner (``is_full_owner``) holds these.
OWNER_RESERVED: Final[frozenset[str]] = frozenset(
    {
        "team:edit",
        "team:delete",
        "member:role",
        "member:remove",
        "member:invite_owner",
        "customrole:manage",
        "sso:manage",
    }
)
CUSTOM_ROLE_KEYS: Final[frozenset[str]] = frozenset(PERMISSIONS) - OWNER_RESERVED


class MembershipLike(Protocol):
    """What ``is_full_owner`` reads of a membership (a protocol: this module stays pure)."""

    @property
    def role(self) -> str: ...

    @property
    def custom_role_id(self) -> int | None: ...


def is_full_owner(membership: MembershipLike | None) -> bool:
    """The one answer to "is this member a full owner?": the owner role and no custom role.

    Full owners hold every key, owner-reserved ones included, in every application (overrides
    never apply to them), and a team always keeps at least one.
    """
    return (
        membership is not None
        and membership.role == Role.OWNER
        and membership.custom_role_id is None
    )


# The same rule as a queryset filter on memberships (``Membership.objects.filter(**...)``).
FULL_OWNER_LOOKUP: Final[dict[str, object]] = {"role": Role.OWNER, "custom_role__isnull": True}


class HasPermissionKeys(Protocol):
    """Anything that carries an explicit set of permission keys (a CustomRole)."""

    @property
    def permission_keys(self) -> frozenset[str]: ...


class UnknownPermissionError(LookupError):
    """A permission key that is not in the table: a programming error, never user input."""


def permission_spec(permission: str) -> PermissionSpec:
    """Return the table row for ``permission`` or raise ``UnknownPermissionError``."""
    try:
        return PERMISSIONS[permission]
    except KeyError:
        raise UnknownPermissionError(f"Unknown permission key {permission!r}") from None


def role_allows(role_or_custom_role: str | HasPermissionKeys | None, permission: str) -> bool:
    """The one answer to "does this role grant this permission?".

    A team role grants every permission whose minimum role ranks at or below it. A custom role
    grants exactly its keys. ``None`` and ``"none"`` (no access) grant nothing.
    """
    spec = permission_spec(permission)
    if role_or_custom_role is None or role_or_custom_role == NO_ACCESS:
        return False
    if isinstance(role_or_custom_role, str):
        if role_or_custom_role not in ROLE_RANK:
            raise ValueError(f"Unknown role {role_or_custom_role!r}")
        return ROLE_RANK[role_or_custom_role] >= ROLE_RANK[spec.minimum_role]
    return permission in role_or_custom_role.permission_keys


def role_at_least(role: str, minimum: str) -> bool:
    """Whether ``role`` ranks at or above ``minimum``."""
    return ROLE_RANK[role] >= ROLE_RANK[minimum]


def validate_custom_role_keys(keys: Iterable[str]) -> list[str]:
    """Return a list of error messages for keys a custom role may not hold (empty if fine)."""
    errors: list[str] = []
    for key in keys:
        if key not in PERMISSIONS:
            errors.append(f"Unknown permission {key!r}.")
        elif key in OWNER_RESERVED:
            errors.append(f"Permission {key!r} is reserved for team owners.")
    return errors


@dataclass(frozen=True)
class Grant:
    """What one actor may do in one team (optionally inside one application)."""

    role: str | None
    custom_keys: frozenset[str] | None = None
    application_role: str | None = None
    token_read_only: bool = False

    def allows(self, permission: str) -> bool:
        """Resolve: custom role > application override > team role, then the token limit."""
        spec = permission_spec(permission)
        if self.token_read_only and not spec.read_only:
            return False
        if spec.application_scoped and self.application_role == NO_ACCESS:
            # "No access" to an application is absolute, whatever the team-wide role says.
            return False
        if self.custom_keys is not None:
            # A stored custom role may predate a key becoming owner-reserved: never grant one.
            return permission in self.custom_keys and permission not in OWNER_RESERVED
        if spec.application_scoped and self.application_role is not None:
            return role_allows(self.application_role, permission)
        return role_allows(self.role, permission)
