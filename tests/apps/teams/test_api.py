"""Team API: flows through real HTTP, error bodies, bad input, foreign ids in bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.rbac.services import custom_role_create
from apps.teams.models import ApplicationRoleOverride, Invitation, Membership, Team
from tests.conftest import Acme, Globex, make_user, session_client

AuditLog = Callable[[Team | int | None], list[str]]


def member_id(team: Team, user: User) -> int:
    return Membership.objects.get(team=team, user=user).pk


def test_team_list_shows_only_own_teams(
    acme_world: Acme, globex_world: Globex, olivia_api: APIClient
) -> None:
    response = olivia_api.get("/api/v1/teams/")
    assert response.status_code == 200
    assert [team["slug"] for team in response.json()["results"]] == ["acme"]


def test_create_team_then_application(db: Any, audit_log: AuditLog) -> None:
    client = session_client(make_user("zoe@example.test"))
    response = client.post("/api/v1/teams/", {"name": "Zoe Lab", "slug": "zoe"}, format="json")
    assert response.status_code == 201, response.content
    response = client.post(
        "/api/v1/teams/zoe/applications/", {"name": "Press", "slug": "press"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["slug"] == "press"
    team = Team.objects.get(slug="zoe")
    assert audit_log(team) == ["team.team.created", "team.member.added", "team.application.created"]
    assert Team.objects.get(slug="zoe").memberships.get().role == "owner"


def test_duplicate_slug_gives_a_field_error(acme_world: Acme, oscar_api: APIClient) -> None:
    response = oscar_api.post("/api/v1/teams/", {"name": "Acme 2", "slug": "acme"}, format="json")
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "duplicate"
    assert body["fields"] == {"slug": ["This slug is already taken."]}
    assert Team.objects.count() == 2


def test_malformed_body_gives_field_errors(acme_world: Acme, olivia_api: APIClient) -> None:
    response = olivia_api.post(
        "/api/v1/teams/acme/invitations/", {"email": "nope", "role": "emperor"}, format="json"
    )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"email", "role"}
    assert not Invitation.objects.filter(team=acme_world.team).exclude(status="accepted").exists()


def test_last_owner_cannot_be_demoted_over_the_api(acme_world: Acme, olivia_api: APIClient) -> None:
    olivia = member_id(acme_world.team, acme_world.olivia)
    response = olivia_api.patch(
        f"/api/v1/teams/acme/members/{olivia}/", {"role": "viewer"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_owner"
    assert response.json()["error"]["message"].startswith("A team must keep at least one owner")
    assert Membership.objects.get(pk=olivia).role == "owner"
    assert olivia_api.post("/api/v1/teams/acme/leave/").status_code == 409
    assert olivia_api.delete(f"/api/v1/teams/acme/members/{olivia}/").status_code == 409
    assert Membership.objects.filter(pk=olivia).exists()


def test_member_can_leave(acme_world: Acme, eddie_api: APIClient) -> None:
    assert eddie_api.post("/api/v1/teams/acme/leave/").status_code == 204
    assert not Membership.objects.filter(team=acme_world.team, user=acme_world.eddie).exists()
    assert eddie_api.get("/api/v1/teams/acme/").status_code == 404


def test_invitation_round_trip_over_the_api(
    acme_world: Acme,
    olivia_api: APIClient,
    django_capture_on_commit_callbacks: Any,
    audit_log: AuditLog,
) -> None:
    newbie = make_user("newbie@example.test")
    with django_capture_on_commit_callbacks(execute=True):
        response = olivia_api.post(
            "/api/v1/teams/acme/invitations/",
            {"email": "newbie@example.test", "role": "member"},
            format="json",
        )
    assert response.status_code == 201
    link = response.json()["link"]
    assert link in mail.outbox[0].body
    token = link.rstrip("/").rsplit("/", 1)[-1]
    client = session_client(newbie)
    shown = client.get(f"/api/v1/invitations/{token}/")
    assert shown.status_code == 200
    assert shown.json()["team"]["slug"] == "acme"
    accepted = client.post(f"/api/v1/invitations/{token}/accept/")
    assert accepted.status_code == 201
    assert accepted.json()["role"] == "member"
    again = client.post(f"/api/v1/invitations/{token}/accept/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invitation_used"
    assert client.get("/api/v1/teams/acme/applications/").status_code == 200
    assert "team.invitation.accepted" in audit_log(acme_world.team)


def test_unknown_invitation_token_is_404(acme_world: Acme, vera_api: APIClient) -> None:
    assert vera_api.post("/api/v1/invitations/not-a-token/accept/").status_code == 404


def test_revoked_invitation_cannot_be_accepted(acme_world: Acme, olivia_api: APIClient) -> None:
    newbie = make_user("newbie@example.test")
    created = olivia_api.post(
        "/api/v1/teams/acme/invitations/", {"email": newbie.email, "role": "viewer"}, format="json"
    ).json()
    assert olivia_api.delete(f"/api/v1/teams/acme/invitations/{created['id']}/").status_code == 204
    token = created["link"].rstrip("/").rsplit("/", 1)[-1]
    response = session_client(newbie).post(f"/api/v1/invitations/{token}/accept/")
    assert response.status_code == 409
    assert not Membership.objects.filter(user=newbie).exists()


# --- RELIABILITY family 2: another team's id inside an own-team body ------------------------


def test_foreign_custom_role_in_member_patch_is_refused(
    acme_world: Acme, globex_world: Globex, olivia_api: APIClient
) -> None:
    foreign = custom_role_create(
        principal=Principal.for_user(globex_world.oscar),
        team=globex_world.team,
        name="Globex ops",
        permissions=["flow:deploy"],
    )
    vera = member_id(acme_world.team, acme_world.vera)
    response = olivia_api.patch(
        f"/api/v1/teams/acme/members/{vera}/",
        {"role": "member", "custom_role": foreign.pk},
        format="json",
    )
    assert response.status_code == 400
    assert "custom_role" in response.json()["error"]["fields"]
    membership = Membership.objects.get(pk=vera)
    assert (membership.role, membership.custom_role_id) == ("viewer", None)


def test_foreign_membership_in_override_is_refused(
    acme_world: Acme, globex_world: Globex, olivia_api: APIClient
) -> None:
    oscar = member_id(globex_world.team, globex_world.oscar)
    response = olivia_api.post(
        "/api/v1/teams/acme/applications/line-1/overrides/",
        {"membership": oscar, "role": "none"},
        format="json",
    )
    assert response.status_code == 400
    assert "membership" in response.json()["error"]["fields"]
    assert not ApplicationRoleOverride.objects.exists()


def test_foreign_ids_in_urls_are_404(
    acme_world: Acme, globex_world: Globex, olivia_api: APIClient
) -> None:
    oscar = member_id(globex_world.team, globex_world.oscar)
    foreign_role = custom_role_create(
        principal=Principal.for_user(globex_world.oscar),
        team=globex_world.team,
        name="X",
        permissions=["flow:read"],
    )
    assert (
        olivia_api.patch(
            f"/api/v1/teams/acme/members/{oscar}/", {"role": "viewer"}, format="json"
        ).status_code
        == 404
    )
    assert olivia_api.delete(f"/api/v1/teams/acme/members/{oscar}/").status_code == 404
    assert olivia_api.get("/api/v1/teams/acme/applications/hq/").status_code == 404
    assert (
        olivia_api.delete(f"/api/v1/teams/acme/custom-roles/{foreign_role.pk}/").status_code == 404
    )
    assert Membership.objects.get(pk=oscar).role == "owner"


def test_huge_and_odd_ids_are_404_not_500(acme_world: Acme, olivia_api: APIClient) -> None:
    for value in ("99999999999999999999999", "0"):
        assert olivia_api.get(f"/api/v1/teams/acme/members/{value}/").status_code == 404
    response = olivia_api.post(
        "/api/v1/teams/acme/applications/line-1/overrides/",
        {"membership": 2**70, "role": "none"},
        format="json",
    )
    assert response.status_code == 400


# --- overrides change what the API lets a member do --------------------------------------------


def test_no_access_override_hides_the_application(
    acme_world: Acme, olivia_api: APIClient, vera_api: APIClient
) -> None:
    vera = member_id(acme_world.team, acme_world.vera)
    response = olivia_api.post(
        "/api/v1/teams/acme/applications/line-1/overrides/",
        {"membership": vera, "role": "none"},
        format="json",
    )
    assert response.status_code == 200
    assert vera_api.get("/api/v1/teams/acme/applications/").json()["results"] == []
    assert vera_api.get("/api/v1/teams/acme/applications/line-1/").status_code == 404
    assert (
        olivia_api.delete(f"/api/v1/teams/acme/applications/line-1/overrides/{vera}/").status_code
        == 204
    )
    assert vera_api.get("/api/v1/teams/acme/applications/line-1/").status_code == 200


def test_custom_role_grants_exactly_its_keys_over_the_api(
    acme_world: Acme, olivia_api: APIClient, vera_api: APIClient
) -> None:
    created = olivia_api.post(
        "/api/v1/teams/acme/custom-roles/",
        {"name": "Line lead", "permissions": ["member:invite"]},
        format="json",
    )
    assert created.status_code == 201
    vera = member_id(acme_world.team, acme_world.vera)
    patched = olivia_api.patch(
        f"/api/v1/teams/acme/members/{vera}/", {"custom_role": created.json()["id"]}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["custom_role"]["name"] == "Line lead"
    # member:invite was not hers as a viewer; member:read was, and is gone with the custom role.
    assert vera_api.get("/api/v1/teams/acme/invitations/").status_code == 200
    assert vera_api.get("/api/v1/teams/acme/members/").status_code == 403
    assert (
        vera_api.post(
            "/api/v1/teams/acme/invitations/",
            {"email": "x@example.test", "role": "owner"},
            format="json",
        ).status_code
        == 403
    )
    # Holders block deletion; clearing the role frees it.
    in_use = olivia_api.delete(f"/api/v1/teams/acme/custom-roles/{created.json()['id']}/")
    assert in_use.status_code == 409
    olivia_api.patch(f"/api/v1/teams/acme/members/{vera}/", {"custom_role": None}, format="json")
    assert (
        olivia_api.delete(f"/api/v1/teams/acme/custom-roles/{created.json()['id']}/").status_code
        == 204
    )


def test_custom_role_rejects_reserved_and_unknown_keys(
    acme_world: Acme, olivia_api: APIClient
) -> None:
    response = olivia_api.post(
        "/api/v1/teams/acme/custom-roles/",
        {"name": "Sneaky", "permissions": ["member:role", "x:y"]},
        format="json",
    )
    assert response.status_code == 400
    assert len(response.json()["error"]["fields"]["permissions"]) == 2
    duplicate = {"name": "Same", "permissions": ["flow:read"]}
    assert (
        olivia_api.post("/api/v1/teams/acme/custom-roles/", duplicate, format="json").status_code
        == 201
    )
    again = olivia_api.post("/api/v1/teams/acme/custom-roles/", duplicate, format="json")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "duplicate"


@pytest.mark.parametrize("bad", [{"role": "emperor"}, {}, {"custom_role": "abc"}])
def test_member_patch_bad_input(
    acme_world: Acme, olivia_api: APIClient, bad: dict[str, Any]
) -> None:
    vera = member_id(acme_world.team, acme_world.vera)
    response = olivia_api.patch(f"/api/v1/teams/acme/members/{vera}/", bad, format="json")
    assert response.status_code == 400
    assert Membership.objects.get(pk=vera).role == "viewer"


def test_token_client_cannot_answer_with_read_only(
    acme_world: Acme, olivia_api: APIClient, token_client: Callable[..., APIClient]
) -> None:
    newbie = make_user("newbie@example.test")
    link = olivia_api.post(
        "/api/v1/teams/acme/invitations/", {"email": newbie.email, "role": "viewer"}, format="json"
    ).json()["link"]
    token = link.rstrip("/").rsplit("/", 1)[-1]
    response = token_client(newbie, read_only=True).post(f"/api/v1/invitations/{token}/accept/")
    assert response.status_code == 403
    assert not Membership.objects.filter(user=newbie).exists()


def test_forwarded_invitation_link_shows_nothing_to_others(
    acme_world: Acme, olivia_api: APIClient, oscar_api: APIClient, globex_world: Globex
) -> None:
    created = olivia_api.post(
        "/api/v1/teams/acme/invitations/",
        {"email": "someone@example.test", "role": "viewer"},
        format="json",
    ).json()
    token = created["link"].rstrip("/").rsplit("/", 1)[-1]
    response = oscar_api.get(f"/api/v1/invitations/{token}/")
    assert response.status_code == 403
    assert "Acme" not in response.content.decode()
    assert "someone@example.test" not in response.content.decode()
    assert oscar_api.post(f"/api/v1/invitations/{token}/decline/").status_code == 403
    assert Invitation.objects.get(pk=created["id"]).status == "pending"
