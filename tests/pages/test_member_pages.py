"""Members, invitations (send, revoke, accept, decline) and role changes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.rbac.services import custom_role_create
from apps.teams.models import Invitation, InvitationStatus, Membership
from apps.teams.services import invitation_create
from tests.conftest import Acme, Globex, make_user

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], Client]


def _role(acme: Acme, user: User) -> str:
    return Membership.objects.get(team=acme.team, user=user).role


def test_members_page_lists_people_and_pending_invitations(
    acme_world: Acme, page_client: ClientFor
) -> None:
    invitation_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        email="x@acme.test",
        role="viewer",
    )
    content = page_client(acme_world.olivia).get("/teams/acme/members/").content.decode()
    for email in ("olivia@acme.test", "eddie@acme.test", "vera@acme.test", "x@acme.test"):
        assert email in content
    assert "Send invitation" in content


def test_viewers_see_members_but_no_invitations_or_buttons(
    acme_world: Acme, page_client: ClientFor
) -> None:
    invitation_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        email="x@acme.test",
        role="viewer",
    )
    content = page_client(acme_world.vera).get("/teams/acme/members/").content.decode()
    assert "eddie@acme.test" in content
    assert "x@acme.test" not in content
    assert "Change role" not in content
    assert "Send invitation" not in content


def test_dashboard_users_cannot_list_members(acme_world: Acme, page_client: ClientFor) -> None:
    assert page_client(acme_world.dana).get("/teams/acme/members/").status_code == 403


def test_invite_sends_a_link_by_email(
    acme_world: Acme, page_client: ClientFor, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = page_client(acme_world.olivia).post(
            "/teams/acme/members/invite/", {"email": "New@Acme.test", "role": "member"}
        )
    assert response.status_code == 302
    invitation = Invitation.objects.get(team=acme_world.team, email="new@acme.test")
    assert invitation.role == "member"
    assert re.search(r"/invitations/\S+/", str(mail.outbox[-1].body))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"email": "not-an-email", "role": "member"}, b"id_email_error"),
        ({"email": "eddie@acme.test", "role": "member"}, b"already a member"),
        ({"email": "z@acme.test", "role": "emperor"}, b"id_role_error"),
    ],
)
def test_invite_bad_input_sends_nothing(
    acme_world: Acme, page_client: ClientFor, data: dict[str, str], error: bytes
) -> None:
    before = Invitation.objects.count()
    outbox = len(mail.outbox)
    response = page_client(acme_world.olivia).post("/teams/acme/members/invite/", data)
    assert response.status_code == 400
    assert error in response.content
    assert Invitation.objects.count() == before
    assert len(mail.outbox) == outbox


def test_a_second_pending_invitation_for_the_same_address_is_refused(
    acme_world: Acme, page_client: ClientFor
) -> None:
    client = page_client(acme_world.olivia)
    client.post("/teams/acme/members/invite/", {"email": "z@acme.test", "role": "viewer"})
    again = client.post("/teams/acme/members/invite/", {"email": "z@acme.test", "role": "owner"})
    assert again.status_code == 400
    assert b"pending invitation" in again.content
    assert Invitation.objects.get(email="z@acme.test").role == "viewer"


def test_members_cannot_invite(acme_world: Acme, page_client: ClientFor) -> None:
    response = page_client(acme_world.eddie).post(
        "/teams/acme/members/invite/", {"email": "friend@acme.test", "role": "owner"}
    )
    assert response.status_code == 403
    assert not Invitation.objects.filter(email="friend@acme.test").exists()


def test_owner_changes_a_role(acme_world: Acme, page_client: ClientFor) -> None:
    eddie = Membership.objects.get(team=acme_world.team, user=acme_world.eddie)
    client = page_client(acme_world.olivia)
    # The former separate page now lands on the member's row, where the role is changed inline.
    old_page = client.get(f"/teams/acme/members/{eddie.pk}/role/")
    assert old_page.status_code == 302
    assert old_page["Location"] == f"/teams/acme/members/#member-{eddie.pk}"
    response = client.post(f"/teams/acme/members/{eddie.pk}/role/", {"role": "viewer"})
    assert response.status_code == 302
    assert _role(acme_world, acme_world.eddie) == "viewer"


def test_assigning_a_custom_role(acme_world: Acme, page_client: ClientFor) -> None:
    role = custom_role_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Operator",
        permissions=["flow:deploy"],
    )
    eddie = Membership.objects.get(team=acme_world.team, user=acme_world.eddie)
    page_client(acme_world.olivia).post(
        f"/teams/acme/members/{eddie.pk}/role/", {"role": "member", "custom_role": role.pk}
    )
    eddie.refresh_from_db()
    assert eddie.custom_role_id == role.pk
    html = page_client(acme_world.olivia).get("/teams/acme/members/").content.decode()
    row = html[html.index("eddie@acme.test") :]
    row = row[: row.index("</tr>")]
    assert "Operator" in row
    assert ">member</span>" not in row, "a custom role replaces the built-in badge"


def test_a_custom_role_of_another_team_is_refused(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    foreign = custom_role_create(
        principal=Principal.for_user(globex_world.oscar),
        team=globex_world.team,
        name="Spy",
        permissions=["flow:read"],
    )
    eddie = Membership.objects.get(team=acme_world.team, user=acme_world.eddie)
    response = page_client(acme_world.olivia).post(
        f"/teams/acme/members/{eddie.pk}/role/", {"role": "member", "custom_role": foreign.pk}
    )
    assert response.status_code == 400
    assert f'id="role-{eddie.pk}-error"'.encode() in response.content
    assert b"Choose one of the roles in the list." in response.content
    eddie.refresh_from_db()
    assert eddie.custom_role_id is None


def test_the_last_owner_cannot_be_demoted(acme_world: Acme, page_client: ClientFor) -> None:
    olivia = Membership.objects.get(team=acme_world.team, user=acme_world.olivia)
    response = page_client(acme_world.olivia).post(
        f"/teams/acme/members/{olivia.pk}/role/", {"role": "viewer"}
    )
    assert response.status_code == 409
    assert b"at least one owner" in response.content
    assert _role(acme_world, acme_world.olivia) == "owner"


def test_members_cannot_change_roles(acme_world: Acme, page_client: ClientFor) -> None:
    eddie = Membership.objects.get(team=acme_world.team, user=acme_world.eddie)
    response = page_client(acme_world.eddie).post(
        f"/teams/acme/members/{eddie.pk}/role/", {"role": "owner"}
    )
    assert response.status_code == 403
    assert _role(acme_world, acme_world.eddie) == "member"


def test_another_teams_membership_is_not_found(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    oscar = Membership.objects.get(team=globex_world.team, user=globex_world.oscar)
    client = page_client(acme_world.olivia)
    assert (
        client.post(f"/teams/acme/members/{oscar.pk}/role/", {"role": "viewer"}).status_code == 404
    )
    assert client.post(f"/teams/acme/members/{oscar.pk}/remove/").status_code == 404
    oscar.refresh_from_db()
    assert oscar.role == "owner"


def test_remove_asks_first_then_removes(acme_world: Acme, page_client: ClientFor) -> None:
    vera = Membership.objects.get(team=acme_world.team, user=acme_world.vera)
    client = page_client(acme_world.olivia)
    assert b"Remove vera@acme.test?" in client.get(f"/teams/acme/members/{vera.pk}/remove/").content
    assert Membership.objects.filter(pk=vera.pk).exists()
    assert client.post(f"/teams/acme/members/{vera.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(pk=vera.pk).exists()


def test_the_last_owner_cannot_be_removed(acme_world: Acme, page_client: ClientFor) -> None:
    olivia = Membership.objects.get(team=acme_world.team, user=acme_world.olivia)
    response = page_client(acme_world.olivia).post(f"/teams/acme/members/{olivia.pk}/remove/")
    assert response.status_code == 409
    assert Membership.objects.filter(pk=olivia.pk).exists()


def test_revoke_an_invitation(acme_world: Acme, page_client: ClientFor) -> None:
    created = invitation_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        email="x@acme.test",
        role="viewer",
    )
    url = f"/teams/acme/invitations/{created.invitation.pk}/revoke/"
    assert page_client(acme_world.eddie).post(url).status_code == 403
    assert page_client(acme_world.olivia).post(url).status_code == 302
    created.invitation.refresh_from_db()
    assert created.invitation.status == InvitationStatus.REVOKED


def test_another_teams_invitation_cannot_be_revoked(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    created = invitation_create(
        principal=Principal.for_user(globex_world.oscar),
        team=globex_world.team,
        email="x@acme.test",
        role="viewer",
    )
    url = f"/teams/acme/invitations/{created.invitation.pk}/revoke/"
    assert page_client(acme_world.olivia).post(url).status_code == 404
    created.invitation.refresh_from_db()
    assert created.invitation.status == InvitationStatus.PENDING


def test_accepting_an_invitation_joins_the_team(acme_world: Acme, page_client: ClientFor) -> None:
    newcomer = make_user("newcomer@acme.test")
    created = invitation_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        email=newcomer.email,
        role="viewer",
    )
    client = page_client(newcomer)
    page = client.get(f"/invitations/{created.secret}/")
    assert b"Join Acme Plant?" in page.content
    assert b"Accept and join" in page.content
    response = client.post(f"/invitations/{created.secret}/", {"action": "accept"})
    assert response.status_code == 302
    assert response["Location"] == "/teams/acme/"
    assert _role(acme_world, newcomer) == "viewer"
    # A used link says so instead of offering the buttons again.
    again = client.get(f"/invitations/{created.secret}/")
    assert b"already accepted" in again.content


def test_declining_an_invitation(acme_world: Acme, page_client: ClientFor) -> None:
    newcomer = make_user("newcomer@acme.test")
    created = invitation_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        email=newcomer.email,
        role="viewer",
    )
    page_client(newcomer).post(f"/invitations/{created.secret}/", {"action": "decline"})
    created.invitation.refresh_from_db()
    assert created.invitation.status == InvitationStatus.DECLINED
    assert not Membership.objects.filter(user=newcomer).exists()


def test_a_forwarded_link_cannot_be_used_by_someone_else(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    created = invitation_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        email="someone@acme.test",
        role="owner",
    )
    client = page_client(globex_world.oscar)
    page = client.get(f"/invitations/{created.secret}/")
    assert page.status_code == 403
    assert b"another email address" in page.content
    assert b"Acme" not in page.content
    response = client.post(f"/invitations/{created.secret}/", {"action": "accept"})
    assert response.status_code == 403
    assert not Membership.objects.filter(team=acme_world.team, user=globex_world.oscar).exists()


def test_an_unknown_invitation_link_is_not_found(acme_world: Acme, page_client: ClientFor) -> None:
    assert page_client(acme_world.vera).get("/invitations/not-a-real-token/").status_code == 404


def test_the_invitation_link_sends_anonymous_visitors_to_sign_up(acme_world: Acme) -> None:
    # Sign-up sends people who already have an account on to log in (test_invited_signup.py).
    created = invitation_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        email="x@acme.test",
        role="viewer",
    )
    response = Client().get(f"/invitations/{created.secret}/")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/signup/{created.secret}/"


def test_an_expired_invitation_says_so_and_cannot_be_accepted(
    acme_world: Acme, page_client: ClientFor
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    newcomer = make_user("late@acme.test")
    created = invitation_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        email=newcomer.email,
        role="viewer",
    )
    Invitation.objects.filter(pk=created.invitation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    client = page_client(newcomer)
    assert b"has expired" in client.get(f"/invitations/{created.secret}/").content
    response = client.post(f"/invitations/{created.secret}/", {"action": "accept"})
    assert response.status_code == 400
    assert b"expired" in response.content
    assert not Membership.objects.filter(user=newcomer).exists()
