"""Findings 3, 6, 7: read-only tokens never write, scoped tokens stay in their teams, and
nobody invites someone above their own role."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import PersonalAccessToken
from apps.accounts.principal import Principal
from apps.accounts.services import token_create
from apps.rbac.services import custom_role_create
from apps.teams.models import Invitation, Membership, Team
from apps.teams.services import invitation_create, member_role_change
from tests.conftest import Acme, Globex

TokenClient = Callable[..., APIClient]


def test_read_only_token_cannot_leave_a_team(acme_world: Acme, token_client: TokenClient) -> None:
    client = token_client(acme_world.eddie, read_only=True)
    response = client.post("/api/v1/teams/acme/leave/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert Membership.objects.filter(team=acme_world.team, user=acme_world.eddie).exists()
    # The same token still reads.
    assert client.get("/api/v1/teams/acme/").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/teams/"),
        ("post", "/api/v1/teams/acme/applications/"),
        ("post", "/api/v1/me/password/"),
        ("delete", "/api/v1/teams/acme/"),
    ],
)
def test_read_only_token_is_refused_every_unsafe_method(
    acme_world: Acme, token_client: TokenClient, method: str, path: str
) -> None:
    client = token_client(acme_world.olivia, read_only=True)
    response = getattr(client, method)(path, {"name": "X", "slug": "x"}, format="json")
    assert response.status_code == 403
    assert "Read-only" in response.json()["error"]["message"]
    assert Team.objects.filter(slug="acme").exists()
    assert not Team.objects.filter(slug="x").exists()


def test_scoped_token_cannot_accept_another_teams_invitation(
    acme_world: Acme, globex_world: Globex, token_client: TokenClient
) -> None:
    created = invitation_create(
        principal=Principal.for_user(globex_world.oscar),
        team=globex_world.team,
        email=acme_world.eddie.email,
        role="member",
    )
    client = token_client(acme_world.eddie, teams=["acme"])
    for answer in ("accept", "decline"):
        response = client.post(f"/api/v1/invitations/{created.secret}/{answer}/")
        assert response.status_code == 403
        assert "limited to some teams" in response.json()["error"]["message"]
    assert not Membership.objects.filter(team=globex_world.team, user=acme_world.eddie).exists()
    assert Invitation.objects.get(pk=created.invitation.pk).status == "pending"
    # An all-teams token of the same user may accept it.
    everywhere = token_client(acme_world.eddie)
    assert everywhere.post(f"/api/v1/invitations/{created.secret}/accept/").status_code == 201


def test_scoped_token_cannot_create_teams_nor_see_or_revoke_tokens(
    acme_world: Acme, token_client: TokenClient
) -> None:
    other = token_create(principal=Principal.for_user(acme_world.eddie), name="laptop")
    client = token_client(acme_world.eddie, teams=["acme"])
    response = client.post("/api/v1/teams/", {"name": "Mine", "slug": "mine"}, format="json")
    assert response.status_code == 403
    assert not Team.objects.filter(slug="mine").exists()
    assert client.get("/api/v1/tokens/").status_code == 403
    assert client.get(f"/api/v1/tokens/{other.token.pk}/").status_code == 403
    assert client.delete(f"/api/v1/tokens/{other.token.pk}/").status_code == 403
    assert PersonalAccessToken.objects.get(pk=other.token.pk).revoked_at is None
    # Inside its team it works as before.
    assert client.get("/api/v1/teams/acme/applications/").status_code == 200


def test_custom_inviter_cannot_invite_above_own_role(acme_world: Acme) -> None:
    olivia = Principal.for_user(acme_world.olivia)
    inviter_role = custom_role_create(
        principal=olivia,
        team=acme_world.team,
        name="Recruiter",
        permissions=["team:read", "member:read", "member:invite"],
    )
    vera = Membership.objects.get(team=acme_world.team, user=acme_world.vera)
    member_role_change(principal=olivia, membership=vera, custom_role=inviter_role)
    client = APIClient()
    client.force_login(acme_world.vera)
    url = "/api/v1/teams/acme/invitations/"
    for role in ("member", "owner"):
        response = client.post(url, {"email": f"{role}@new.test", "role": role}, format="json")
        assert response.status_code == 403, response.content
    assert not Invitation.objects.filter(email__endswith="@new.test").exists()
    # At or below her own role she may invite: the custom key still works.
    for role in ("viewer", "dashboard"):
        response = client.post(url, {"email": f"{role}@new.test", "role": role}, format="json")
        assert response.status_code == 201, response.content
