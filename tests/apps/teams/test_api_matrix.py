"""RELIABILITY family 4: the role x permission table against real API status codes.

Every team endpoint is called by every persona (and by a read-only token of the owner). The
expected answer comes from ``role_allows`` alone: granted → the success status, denied → 403,
outsider → 404. Every denial also checks that nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.rbac.models import CustomRole
from apps.rbac.permissions import PERMISSIONS, role_allows
from apps.teams.models import (
    Application,
    ApplicationRoleOverride,
    Invitation,
    Membership,
    Team,
)
from tests.conftest import Acme


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # formatted with {vera} (vera's membership id)
    permission: str
    success: int
    body: dict[str, Any] | None = None


ENDPOINTS = [
    Endpoint("get", "/api/v1/teams/acme/", "team:read", 200),
    Endpoint("patch", "/api/v1/teams/acme/", "team:edit", 200, {"name": "Acme Works"}),
    Endpoint("delete", "/api/v1/teams/acme/", "team:delete", 204),
    Endpoint("get", "/api/v1/teams/acme/applications/", "application:read", 200),
    Endpoint(
        "post",
        "/api/v1/teams/acme/applications/",
        "application:create",
        201,
        {"name": "Line 2", "slug": "line-2"},
    ),
    Endpoint("get", "/api/v1/teams/acme/applications/line-1/", "application:read", 200),
    Endpoint(
        "patch",
        "/api/v1/teams/acme/applications/line-1/",
        "application:edit",
        200,
        {"description": "Filling"},
    ),
    Endpoint("delete", "/api/v1/teams/acme/applications/line-1/", "application:delete", 204),
    Endpoint("get", "/api/v1/teams/acme/members/", "member:read", 200),
    Endpoint("get", "/api/v1/teams/acme/members/{vera}/", "member:read", 200),
    Endpoint("patch", "/api/v1/teams/acme/members/{vera}/", "member:role", 200, {"role": "member"}),
    Endpoint("delete", "/api/v1/teams/acme/members/{vera}/", "member:remove", 204),
    Endpoint("get", "/api/v1/teams/acme/invitations/", "member:invite", 200),
    Endpoint(
        "post",
        "/api/v1/teams/acme/invitations/",
        "member:invite",
        201,
        {"email": "new@example.test", "role": "viewer"},
    ),
    Endpoint("get", "/api/v1/teams/acme/custom-roles/", "customrole:read", 200),
    Endpoint(
        "post",
        "/api/v1/teams/acme/custom-roles/",
        "customrole:manage",
        201,
        {"name": "Deployer", "permissions": ["flow:deploy"]},
    ),
    Endpoint("get", "/api/v1/teams/acme/applications/line-1/overrides/", "member:read", 200),
    Endpoint(
        "post",
        "/api/v1/teams/acme/applications/line-1/overrides/",
        "member:role",
        200,
        {"membership": "{vera}", "role": "dashboard"},
    ),
]

PERSONAS = {
    "olivia_owner": "owner",
    "eddie_editor": "member",
    "vera_viewer": "viewer",
    "dana_dashboard": "dashboard",
}


def team_state(team_id: int) -> tuple[Any, ...]:
    """Everything an acme endpoint could change, as plain values."""
    return (
        list(Team.objects.filter(pk=team_id).values_list("name", "slug")),
        list(
            Application.objects.filter(team_id=team_id).values_list("slug", "name", "description")
        ),
        sorted(
            Membership.objects.filter(team_id=team_id).values_list(
                "user__email", "role", "custom_role"
            )
        ),
        sorted(Invitation.objects.filter(team_id=team_id).values_list("email", "status")),
        sorted(CustomRole.objects.filter(team_id=team_id).values_list("name", "permissions")),
        sorted(
            ApplicationRoleOverride.objects.filter(application__team_id=team_id).values_list(
                "membership_id", "role"
            )
        ),
    )


def call(client: APIClient, endpoint: Endpoint, world: Acme) -> Any:
    vera = Membership.objects.get(team=world.team, user=world.vera).pk
    path = endpoint.path.format(vera=vera)
    body = None
    if endpoint.body is not None:
        body = {k: (vera if v == "{vera}" else v) for k, v in endpoint.body.items()}
    return getattr(client, endpoint.method)(path, body, format="json")


def endpoint_id(endpoint: Endpoint) -> str:
    return f"{endpoint.method.upper()} {endpoint.path}"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_role_matrix(
    endpoint: Endpoint,
    persona: str,
    acme_world: Acme,
    client_for: Callable[[Any], APIClient],
    request: pytest.FixtureRequest,
) -> None:
    user = request.getfixturevalue(persona)
    allowed = role_allows(PERSONAS[persona], endpoint.permission)
    before = team_state(acme_world.team.pk)
    response = call(client_for(user), endpoint, acme_world)
    if allowed:
        assert response.status_code == endpoint.success, response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] == "permission_denied"
        assert team_state(acme_world.team.pk) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_read_only_token_of_the_owner(
    endpoint: Endpoint, acme_world: Acme, token_client: Callable[..., APIClient]
) -> None:
    client = token_client(acme_world.olivia, read_only=True)
    before = team_state(acme_world.team.pk)
    response = call(client, endpoint, acme_world)
    if PERMISSIONS[endpoint.permission].read_only:
        assert response.status_code == endpoint.success, response.content
    else:
        assert response.status_code == 403, response.content
        assert team_state(acme_world.team.pk) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_outsider_gets_404_and_changes_nothing(
    endpoint: Endpoint, acme_world: Acme, oscar_api: APIClient
) -> None:
    before = team_state(acme_world.team.pk)
    response = call(oscar_api, endpoint, acme_world)
    assert response.status_code == 404, response.content
    assert team_state(acme_world.team.pk) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_token_limited_to_another_team_sees_nothing(
    endpoint: Endpoint,
    acme_world: Acme,
    globex_world: Any,
    token_client: Callable[..., APIClient],
) -> None:
    """Olivia is also in globex here; her token limited to globex must not reach acme."""
    from tests.conftest import add_member

    add_member(globex_world.team, globex_world.oscar, acme_world.olivia, "member")
    client = token_client(acme_world.olivia, teams=["globex"])
    before = team_state(acme_world.team.pk)
    response = call(client, endpoint, acme_world)
    assert response.status_code == 404, response.content
    assert team_state(acme_world.team.pk) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_anonymous_gets_401(endpoint: Endpoint, acme_world: Acme) -> None:
    before = team_state(acme_world.team.pk)
    response = call(APIClient(), endpoint, acme_world)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert team_state(acme_world.team.pk) == before
