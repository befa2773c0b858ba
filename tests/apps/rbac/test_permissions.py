"""The permission table and role_allows(): pure logic, checked exhaustively."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from apps.rbac.permissions import (
    CUSTOM_ROLE_KEYS,
    NO_ACCESS,
    OWNER_RESERVED,
    PERMISSIONS,
    ROLE_RANK,
    ROLES,
    Grant,
    Role,
    UnknownPermissionError,
    is_full_owner,
    role_allows,
    validate_custom_role_keys,
)

REQUIRED_KEYS = {
    "team:read",
    "team:edit",
    "team:delete",
    "member:invite",
    "member:remove",
    "member:role",
    "application:create",
    "application:edit",
    "application:delete",
    "application:read",
    "audit:read",
    "audit:export",
    "token:manage",
    "customrole:manage",
    "flow:read",
    "flow:edit",
    "flow:deploy",
    "snapshot:create",
    "pipeline:promote",
    "device:manage",
    "device:develop",
    "device:read",
    "sso:manage",
    "model:read",
    "model:manage",
}


@dataclass(frozen=True)
class Keys:
    permission_keys: frozenset[str]


def test_roles_are_strictly_ordered_owner_member_viewer_dashboard() -> None:
    assert ROLES == ("owner", "member", "viewer", "dashboard")
    ranks = [ROLE_RANK[role] for role in ROLES]
    assert ranks == sorted(ranks, reverse=True)
    assert len(set(ranks)) == 4


def test_table_holds_every_key_the_platform_names() -> None:
    assert set(PERMISSIONS) >= REQUIRED_KEYS
    for key, spec in PERMISSIONS.items():
        assert ":" in key
        assert spec.minimum_role in ROLES
        assert spec.description


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_role_allows_every_pair(role: str, permission: str) -> None:
    expected = ROLE_RANK[role] >= ROLE_RANK[PERMISSIONS[permission].minimum_role]
    assert role_allows(role, permission) is expected


@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_owner_has_everything_and_roles_are_monotonic(permission: str) -> None:
    assert role_allows(Role.OWNER, permission)
    granted = [role_allows(role, permission) for role in ROLES]
    # Once a lower role lacks a permission, every role below it lacks it too.
    assert granted == sorted(granted, reverse=True)


def test_no_access_and_none_grant_nothing() -> None:
    for permission in PERMISSIONS:
        assert not role_allows(NO_ACCESS, permission)
        assert not role_allows(None, permission)


def test_custom_role_grants_exactly_its_keys() -> None:
    keys = Keys(frozenset({"flow:read", "flow:deploy"}))
    for permission in PERMISSIONS:
        assert role_allows(keys, permission) is (permission in {"flow:read", "flow:deploy"})


def test_unknown_permission_and_role_are_programming_errors() -> None:
    with pytest.raises(UnknownPermissionError):
        role_allows(Role.OWNER, "flow:destroy")
    with pytest.raises(ValueError, match="Unknown role"):
        role_allows("admin", "flow:read")


def test_custom_role_keys_exclude_owner_reserved() -> None:
    assert CUSTOM_ROLE_KEYS.isdisjoint(OWNER_RESERVED)
    assert validate_custom_role_keys(["flow:edit", "audit:read"]) == []
    problems = validate_custom_role_keys(["member:role", "nope:nope"])
    assert problems == [
        "Permission 'member:role' is reserved for team owners.",
        "Unknown permission 'nope:nope'.",
    ]


@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_read_only_token_keeps_only_read_permissions(permission: str) -> None:
    grant = Grant(role=Role.OWNER, token_read_only=True)
    assert grant.allows(permission) is PERMISSIONS[permission].read_only


@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
@pytest.mark.parametrize("team_role", ROLES)
@pytest.mark.parametrize("override", [None, Role.MEMBER, Role.VIEWER, Role.DASHBOARD, NO_ACCESS])
def test_resolution_application_override_over_team_role(
    permission: str, team_role: str, override: str | None
) -> None:
    spec = PERMISSIONS[permission]
    grant = Grant(role=team_role, application_role=override)
    if spec.application_scoped and override is not None:
        expected = override != NO_ACCESS and role_allows(override, permission)
    else:
        expected = role_allows(team_role, permission)
    assert grant.allows(permission) is expected


@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_resolution_custom_role_over_override_except_no_access(permission: str) -> None:
    custom = frozenset({"flow:edit", "team:read"})
    spec = PERMISSIONS[permission]
    assert Grant(role=Role.VIEWER, custom_keys=custom, application_role=Role.DASHBOARD).allows(
        permission
    ) is (permission in custom)
    blocked = Grant(role=Role.VIEWER, custom_keys=custom, application_role=NO_ACCESS)
    assert blocked.allows(permission) is (permission in custom and not spec.application_scoped)


def test_platform_keys_come_from_the_admin_flag_alone() -> None:
    from types import SimpleNamespace

    from apps.rbac.permissions import PLATFORM_PERMISSIONS, UnknownPermissionError, platform_allows

    admin = SimpleNamespace(is_active=True, is_platform_admin=True)
    for key in PLATFORM_PERMISSIONS:
        assert key not in PERMISSIONS, "no team role or custom role may hold a platform key"
        assert platform_allows(admin, key)
        assert not platform_allows(SimpleNamespace(is_active=True, is_platform_admin=False), key)
        assert not platform_allows(SimpleNamespace(is_active=False, is_platform_admin=True), key)
        assert not platform_allows(None, key)
        assert not platform_allows(admin, key, token_all_teams=False)
    assert platform_allows(admin, "platform:read", token_read_only=True)
    assert not platform_allows(admin, "platform:user_manage", token_read_only=True)
    with pytest.raises(UnknownPermissionError):
        platform_allows(admin, "team:read")


@dataclass(frozen=True)
class _Membership:
    role: str
    custom_role_id: int | None = None


@pytest.mark.parametrize(
    ("membership", "full"),
    [
        (_Membership(Role.OWNER), True),
        (_Membership(Role.OWNER, custom_role_id=3), False),
        (_Membership(Role.MEMBER), False),
        (_Membership(Role.MEMBER, custom_role_id=3), False),
        (None, False),
    ],
)
def test_is_full_owner_is_the_owner_role_without_a_custom_role(
    membership: _Membership | None, full: bool
) -> None:
    assert is_full_owner(membership) is full


@pytest.mark.parametrize("key", sorted(OWNER_RESERVED))
def test_owner_reserved_keys_need_a_full_owner(key: str) -> None:
    assert Grant(role=Role.OWNER).allows(key)
    assert not Grant(role=Role.MEMBER).allows(key)
    # Even a custom role that holds the key (stored before it was reserved) does not grant it.
    assert not Grant(role=Role.MEMBER, custom_keys=frozenset({key})).allows(key)
