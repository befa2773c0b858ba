"""Owner-only acts are permission keys only a full owner holds (``is_full_owner``).

Custom roles may hold ``member:invite`` but never ``member:invite_owner``, ``member:remove`` or
any other owner-reserved key, not even a role stored before a key became reserved.
"""

from __future__ import annotations

from collections.abc import Callable

from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.rbac.models import CustomRole
from apps.rbac.services import custom_role_create
from apps.teams.models import Invitation, Membership, Team
from apps.teams.services import member_role_change
from tests.conftest import Acme

AuditLog = Callable[[Team | int | None], list[str]]


def _give_custom_role(acme: Acme, role: CustomRole) -> None:
    member_role_change(
        principal=Principal.for_user(acme.olivia),
        membership=Membership.objects.get(team=acme.team, user=acme.eddie),
        custom_role=role,
    )


def test_a_recruiter_invites_viewers_but_never_owners(
    acme_world: Acme, eddie_api: APIClient, audit_log: AuditLog
) -> None:
    recruiter = custom_role_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Recruiter",
        permissions=["member:invite", "member:read"],
    )
    _give_custom_role(acme_world, recruiter)
    url = "/api/v1/teams/acme/invitations/"
    viewer = eddie_api.post(url, {"email": "val@acme.test", "role": "viewer"}, format="json")
    assert viewer.status_code == 201, viewer.content
    before = audit_log(acme_world.team)
    owner = eddie_api.post(url, {"email": "mallory@acme.test", "role": "owner"}, format="json")
    assert owner.status_code == 403
    assert owner.json()["error"]["code"] == "permission_denied"
    assert not Invitation.objects.filter(email="mallory@acme.test").exists()
    assert audit_log(acme_world.team) == before


def test_custom_roles_cannot_be_given_owner_reserved_keys(
    acme_world: Acme, olivia_api: APIClient
) -> None:
    for key in ("member:remove", "member:invite_owner", "team:delete"):
        response = olivia_api.post(
            "/api/v1/teams/acme/custom-roles/",
            {"name": f"Has {key}", "permissions": [key]},
            format="json",
        )
        assert response.status_code == 400, (key, response.content)
        assert "reserved for team owners" in response.content.decode()
    assert not CustomRole.objects.exists()


def test_a_stored_role_holding_a_now_reserved_key_grants_nothing_of_it(
    acme_world: Acme, eddie_api: APIClient, audit_log: AuditLog
) -> None:
    # Written straight to the table: the shape a role saved before member:remove was reserved.
    legacy = CustomRole.objects.create(
        team=acme_world.team, name="Old bouncer", permissions=["member:remove", "member:read"]
    )
    _give_custom_role(acme_world, legacy)
    before = (set(Membership.objects.values_list("pk", flat=True)), audit_log(acme_world.team))
    for user in (acme_world.vera, acme_world.olivia):
        target = Membership.objects.get(team=acme_world.team, user=user)
        response = eddie_api.delete(f"/api/v1/teams/acme/members/{target.pk}/")
        assert response.status_code == 403, response.content
    assert (set(Membership.objects.values_list("pk", flat=True)), audit_log(acme_world.team)) == (
        before
    )
    assert eddie_api.get("/api/v1/teams/acme/members/").status_code == 200
