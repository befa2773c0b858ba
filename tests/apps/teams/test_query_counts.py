"""List endpoints do a fixed number of queries whatever the number of rows (no N+1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.rbac.services import custom_role_create
from apps.teams.models import Membership
from apps.teams.services import (
    application_create,
    application_override_set,
    invitation_create,
    member_role_change,
    team_create,
)
from tests.conftest import Acme, add_member, make_user

# Outside `make test-fast`: fills lists with many rows.
pytestmark = pytest.mark.slow

LISTS = [
    "/api/v1/teams/",
    "/api/v1/teams/acme/applications/",
    "/api/v1/teams/acme/members/",
    "/api/v1/teams/acme/invitations/",
    "/api/v1/teams/acme/custom-roles/",
    "/api/v1/teams/acme/applications/line-1/overrides/",
    "/api/v1/tokens/",
]


def grow(world: Acme, index: int) -> None:
    """Add one more of everything each list shows."""
    team, olivia = world.team, world.olivia
    user = make_user(f"extra{index}@example.test")
    add_member(team, olivia, user, "viewer")
    role = custom_role_create(
        principal=Principal.for_user(olivia),
        team=team,
        name=f"Role {index}",
        permissions=["flow:read"],
    )
    member_role_change(
        principal=Principal.for_user(olivia),
        membership=Membership.objects.get(team=team, user=user),
        custom_role=role,
    )
    application_create(
        principal=Principal.for_user(olivia), team=team, name=f"App {index}", slug=f"app-{index}"
    )
    application_override_set(
        principal=Principal.for_user(olivia),
        membership=Membership.objects.get(team=team, user=user),
        application=world.line_1,
        role="viewer",
    )
    invitation_create(
        principal=Principal.for_user(olivia),
        team=team,
        email=f"invitee{index}@example.test",
        role="viewer",
    )
    other = team_create(
        principal=Principal.for_user(olivia), name=f"Team {index}", slug=f"team-{index}"
    )
    del other
    from apps.accounts.services import token_create

    token_create(
        principal=Principal.for_user(olivia),
        name=f"t{index}",
        team_slugs=["acme", f"team-{index}"],
    )


def count(client: APIClient, path: str) -> int:
    client.get(path)  # warm process-wide caches (content types) so only per-request work counts
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, response.content
    return len(queries)


@pytest.mark.parametrize("path", LISTS)
def test_list_query_count_does_not_grow(
    path: str, acme_world: Acme, client_for: Callable[[Any], APIClient]
) -> None:
    client = client_for(acme_world.olivia)
    grow(acme_world, 0)
    small = count(client, path)
    for index in range(1, 6):
        grow(acme_world, index)
    large = count(client, path)
    assert large == small
    assert small <= 8
