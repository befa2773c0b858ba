"""An invited person without an account signs up from the link and lands in the team."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.teams.models import InvitationStatus, Membership
from apps.teams.services import invitation_create, invitation_revoke
from tests.conftest import Acme, make_user

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], Client]
GOOD = "plant-floor-Walrus-42"


def _invite(acme: Acme, email: str = "nina@newcomer.test") -> str:
    created = invitation_create(
        principal=Principal.for_user(acme.olivia), team=acme.team, email=email, role="viewer"
    )
    return created.secret


def test_the_link_opens_sign_up_prefilled_then_joins_the_team(acme_world: Acme) -> None:
    secret = _invite(acme_world)
    client = Client()
    link = client.get(f"/invitations/{secret}/")
    assert link.status_code == 302
    assert link["Location"] == f"/accounts/signup/{secret}/"
    page = client.get(link["Location"])
    assert page.status_code == 200
    assert b'value="nina@newcomer.test" readonly' in page.content
    assert b"Join Acme Plant" in page.content
    done = client.post(
        link["Location"],
        {"full_name": "Nina New", "password": GOOD, "password_again": GOOD},
    )
    assert done.status_code == 302
    assert done["Location"] == "/teams/acme/"
    nina = User.objects.get(email="nina@newcomer.test")
    assert nina.check_password(GOOD)
    assert nina.full_name == "Nina New"
    assert Membership.objects.get(team=acme_world.team, user=nina).role == "viewer"
    assert client.get("/teams/acme/").status_code == 200, "signed in right away"
    assert AuditEvent.objects.filter(event="account.user.created", target_id=str(nina.pk)).exists()


def test_mismatched_or_weak_passwords_create_nothing(acme_world: Acme) -> None:
    secret = _invite(acme_world)
    url = f"/accounts/signup/{secret}/"
    client = Client()
    differ = client.post(url, {"password": GOOD, "password_again": GOOD + "x"})
    assert differ.status_code == 400
    assert b"The two passwords differ." in differ.content
    weak = client.post(url, {"password": "12345678", "password_again": "12345678"})
    assert weak.status_code == 400
    assert b"id_password_error" in weak.content
    assert not User.objects.filter(email="nina@newcomer.test").exists()


def test_someone_with_an_account_is_sent_to_log_in_and_back(acme_world: Acme) -> None:
    make_user("nina@newcomer.test")
    secret = _invite(acme_world)
    response = Client().get(f"/accounts/signup/{secret}/")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/invitations/{secret}/"


@pytest.mark.parametrize("how", ["unknown", "revoked"])
def test_a_dead_link_explains_and_creates_nothing(acme_world: Acme, how: str) -> None:
    secret = _invite(acme_world)
    if how == "revoked":
        from apps.teams.models import Invitation

        invitation = Invitation.objects.get(email="nina@newcomer.test")
        invitation_revoke(principal=Principal.for_user(acme_world.olivia), invitation=invitation)
        assert invitation.__class__.objects.get(pk=invitation.pk).status == InvitationStatus.REVOKED
    else:
        secret = "not-a-real-token"
    url = f"/accounts/signup/{secret}/"
    page = Client().get(url)
    assert page.status_code == 404
    assert b"This invitation cannot be used" in page.content
    post = Client().post(url, {"password": GOOD, "password_again": GOOD})
    assert post.status_code == 404
    assert not User.objects.filter(email="nina@newcomer.test").exists()


def test_a_platform_admin_creates_an_account(acme_world: Acme) -> None:
    from apps.accounts.services import user_create

    paula = user_create(email="paula@platform.test", password=GOOD, is_platform_admin=True)
    admin = Client()
    admin.force_login(paula)
    form = admin.get("/platform/users/new/")
    assert form.status_code == 200
    done = admin.post(
        "/platform/users/new/",
        {"email": "kim@newcomer.test", "full_name": "Kim", "password": GOOD},
    )
    assert done.status_code == 302
    kim = User.objects.get(email="kim@newcomer.test")
    assert kim.check_password(GOOD)
    row = AuditEvent.objects.get(event="account.user.created", target_id=str(kim.pk))
    assert row.actor_id == str(paula.pk)
    duplicate = admin.post("/platform/users/new/", {"email": "KIM@newcomer.test", "password": GOOD})
    assert duplicate.status_code == 400
    assert User.objects.filter(email__iexact="kim@newcomer.test").count() == 1


def test_only_platform_admins_create_accounts(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.olivia)
    refused = client.post("/platform/users/new/", {"email": "x@newcomer.test", "password": GOOD})
    assert refused.status_code == 403
    assert not User.objects.filter(email="x@newcomer.test").exists()
