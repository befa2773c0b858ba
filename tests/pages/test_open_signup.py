"""Open sign-up is a platform admin's choice, stored in the installation's settings row; closed,
the sign-up page says in words how to get in, and invitations keep working."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, override_settings

from apps.accounts.models import InstallationSettings, User
from apps.accounts.principal import Principal
from apps.accounts.selectors import open_signup_allowed
from apps.accounts.services import installation_settings_update, user_create
from apps.accounts.throttle import SIGNUP
from apps.audit.models import AuditEvent
from apps.teams.models import Membership
from apps.teams.services import invitation_create
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], Client]
GOOD = "plant-floor-Walrus-42"


def _paula() -> User:
    return user_create(email="paula@platform.test", password=PASSWORD, is_platform_admin=True)


def _sign_up(client: Client, email: str, ip: str = "203.0.113.30") -> Any:
    body = {"email": email, "full_name": "Sam", "password": GOOD, "password_again": GOOD}
    return client.post("/accounts/signup/", body, REMOTE_ADDR=ip)


def test_closed_by_default_the_page_says_sign_up_is_by_invitation(acme_world: Acme) -> None:
    client = Client()
    page = client.get("/accounts/signup/")
    assert page.status_code == 200  # a page to read, not an error
    text = page.content.decode()
    assert "Sign-up is by invitation" in text
    assert "ask someone in your organisation to invite you" in text
    assert page.templates[0].name == "accounts/signup_closed.html"
    posted = _sign_up(client, "sam@newcomer.test")
    assert posted.status_code == 403
    assert not User.objects.filter(email="sam@newcomer.test").exists()
    login = client.get("/accounts/login/").content.decode()
    assert "Accounts come with an invitation" in login
    assert 'href="/accounts/signup/"' not in login


def test_a_platform_admin_opens_sign_up_and_anyone_can_then_join(
    acme_world: Acme, page_client: ClientFor
) -> None:
    paula = _paula()
    admin = page_client(paula)
    users_page = admin.get("/platform/users/").content.decode()
    assert "By invitation" in users_page
    switched = admin.post("/platform/signup/", {"open_signup": "1"})
    assert switched.status_code == 302
    assert InstallationSettings.objects.get().open_signup is True
    (event,) = AuditEvent.objects.filter(event="platform.signup.changed")
    assert event.before == {"open_signup": False}
    assert event.after == {"open_signup": True}
    assert event.actor_id == str(paula.pk)
    assert event.team_key == 0  # the platform chain

    visitor = Client()
    assert 'href="/accounts/signup/"' in visitor.get("/accounts/login/").content.decode()
    assert visitor.get("/accounts/signup/").status_code == 200
    done = _sign_up(visitor, "Sam@Newcomer.test")
    assert done.status_code == 302
    sam = User.objects.get(email="sam@newcomer.test")
    assert visitor.session["_auth_user_id"] == str(sam.pk)
    assert AuditEvent.objects.filter(event="account.user.created", target_id=str(sam.pk)).exists()
    # A taken address is a form error, not a second account.
    again = _sign_up(Client(), "sam@newcomer.test")
    assert again.status_code == 400
    assert "already exists" in again.content.decode()

    # And closed again: the page says so, nothing is created.
    admin.post("/platform/signup/", {"open_signup": "0"})
    assert not open_signup_allowed()
    assert _sign_up(Client(), "late@newcomer.test").status_code == 403
    assert AuditEvent.objects.filter(event="platform.signup.changed").count() == 2


def test_only_platform_admins_switch_sign_up(acme_world: Acme, page_client: ClientFor) -> None:
    refused = page_client(acme_world.olivia).post("/platform/signup/", {"open_signup": "1"})
    assert refused.status_code == 403
    assert not open_signup_allowed()
    assert not AuditEvent.objects.filter(event="platform.signup.changed").exists()
    # Saving the same choice again writes nothing.
    installation_settings_update(principal=Principal.for_user(_paula()), open_signup=False)
    assert not AuditEvent.objects.filter(event="platform.signup.changed").exists()


def test_invited_sign_up_works_while_open_sign_up_is_closed(acme_world: Acme) -> None:
    assert not open_signup_allowed()
    secret = invitation_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        email="nina@newcomer.test",
        role="viewer",
    ).secret
    client = Client()
    body = {"full_name": "Nina", "password": GOOD, "password_again": GOOD}
    done = client.post(f"/accounts/signup/{secret}/", body)
    assert done.status_code == 302
    nina = User.objects.get(email="nina@newcomer.test")
    assert Membership.objects.filter(team=acme_world.team, user=nina).exists()


def test_the_environment_gives_only_the_first_value(acme_world: Acme) -> None:
    with override_settings(OPEN_SIGNUP_DEFAULT=True):
        assert open_signup_allowed()  # first read: the row is created open
    assert InstallationSettings.objects.get().open_signup is True
    # From now on the row decides, whatever the setting says.
    assert open_signup_allowed()
    installation_settings_update(principal=Principal.for_user(_paula()), open_signup=False)
    with override_settings(OPEN_SIGNUP_DEFAULT=True):
        assert not open_signup_allowed()


def test_new_accounts_from_one_address_are_throttled(acme_world: Acme) -> None:
    installation_settings_update(principal=Principal.for_user(_paula()), open_signup=True)
    for index in range(SIGNUP.per_ip.attempts):
        created = _sign_up(Client(), f"bulk{index}@spam.test", ip="192.0.2.77")
        assert created.status_code == 302
    refused = _sign_up(Client(), "one-more@spam.test", ip="192.0.2.77")
    assert refused.status_code == 429
    assert "Too many new accounts" in refused.content.decode()
    assert not User.objects.filter(email="one-more@spam.test").exists()
    assert _sign_up(Client(), "elsewhere@ok.test", ip="192.0.2.78").status_code == 302


def test_the_api_reads_and_switches_sign_up_for_platform_admins_only(
    acme_world: Acme, page_client: ClientFor
) -> None:
    from rest_framework.test import APIClient

    admin = APIClient()
    admin.force_login(_paula())
    assert admin.get("/api/v1/platform/settings/").json()["open_signup"] is False
    switched = admin.patch("/api/v1/platform/settings/", {"open_signup": True}, format="json")
    assert switched.status_code == 200
    assert switched.json()["open_signup"] is True
    assert open_signup_allowed()
    assert AuditEvent.objects.filter(event="platform.signup.changed").count() == 1
    bad = admin.put("/api/v1/platform/settings/", {"open_signup": "perhaps"}, format="json")
    assert bad.status_code == 400
    assert "open_signup" in bad.json()["error"]["fields"]
    assert open_signup_allowed()

    owner = APIClient()
    owner.force_login(acme_world.olivia)
    refused = owner.patch("/api/v1/platform/settings/", {"open_signup": False}, format="json")
    assert refused.status_code == 403
    assert open_signup_allowed()
