"""Login, logout, password change and reset, personal access tokens."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.core import mail
from django.test import Client

from apps.accounts.models import PersonalAccessToken, User
from apps.accounts.principal import Principal
from apps.accounts.services import hash_token, token_create
from apps.audit.models import AuditEvent
from tests.conftest import PASSWORD, Acme, Globex

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], Client]


def test_login_with_email_and_password_lands_in_the_only_team(acme_world: Acme) -> None:
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="email"' in page.content
    assert b'name="password"' in page.content
    response = client.post("/accounts/login/", {"email": "Olivia@ACME.test", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 302, "one team: go to it, not to a one-row list"
    assert home["Location"] == "/teams/acme/"
    assert client.get("/?all=1").status_code == 200


def test_logging_out_says_so(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.olivia)
    response = client.post("/accounts/logout/", follow=True)
    assert response.status_code == 200
    assert b"You are logged out" in response.content
    assert "_auth_user_id" not in client.session


def test_team_switcher_name_is_its_accessible_name(
    acme_world: Acme, page_client: ClientFor
) -> None:
    html = page_client(acme_world.olivia).get("/teams/acme/").content.decode()
    summary = html[html.index("<summary") : html.index("</summary>")]
    assert "aria-label" not in summary, "an aria-label hides the visible team name (axe: label)"
    assert "Acme Plant" in summary


def test_login_with_a_wrong_password_explains_and_signs_nobody_in(acme_world: Acme) -> None:
    client = Client()
    response = client.post("/accounts/login/", {"email": "olivia@acme.test", "password": "nope"})
    assert response.status_code == 200
    assert b"do not match an active account" in response.content
    assert "_auth_user_id" not in client.session


def test_login_refuses_a_deactivated_account(acme_world: Acme) -> None:
    User.objects.filter(pk=acme_world.vera.pk).update(is_active=False)
    response = Client().post("/accounts/login/", {"email": "vera@acme.test", "password": PASSWORD})
    assert b"do not match an active account" in response.content


def test_login_with_a_malformed_email_shows_the_error_next_to_the_field(db: None) -> None:
    response = Client().post("/accounts/login/", {"email": "not-an-email", "password": "x"})
    assert re.search(rb'<ul class="field-error" id="id_email_error">', response.content)
    assert b'aria-invalid="true"' in response.content


def test_pages_send_anonymous_visitors_to_the_login(acme_world: Acme) -> None:
    for url in ("/", "/teams/acme/", "/accounts/tokens/", "/teams/acme/audit/"):
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_logout_asks_on_get_and_signs_out_on_post(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.olivia)
    confirm = client.get("/accounts/logout/")
    assert confirm.status_code == 200
    assert b"Log out?" in confirm.content
    assert "_auth_user_id" in client.session
    assert client.post("/accounts/logout/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_password_change_goes_through_the_audited_service(
    acme_world: Acme, page_client: ClientFor
) -> None:
    client = page_client(acme_world.eddie)
    new = "another-Long-secret-42"
    response = client.post(
        "/accounts/password/change/",
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    acme_world.eddie.refresh_from_db()
    assert acme_world.eddie.check_password(new)
    assert AuditEvent.objects.filter(
        team_key=0, event="account.password.changed", actor_id=str(acme_world.eddie.pk)
    ).exists()
    # Still signed in on this browser.
    assert client.get("/?all=1").status_code == 200


@pytest.mark.parametrize(
    ("old", "new1", "new2", "field"),
    [
        ("wrong-password", "another-Long-secret-42", "another-Long-secret-42", "old_password"),
        (PASSWORD, "another-Long-secret-42", "different-Long-secret-42", "new_password2"),
        (PASSWORD, "123", "123", "new_password2"),
    ],
)
def test_password_change_bad_input_changes_nothing(
    acme_world: Acme, page_client: ClientFor, old: str, new1: str, new2: str, field: str
) -> None:
    before = User.objects.get(pk=acme_world.eddie.pk).password
    response = page_client(acme_world.eddie).post(
        "/accounts/password/change/",
        {"old_password": old, "new_password1": new1, "new_password2": new2},
    )
    assert response.status_code == 200
    assert f'id="id_{field}_error"'.encode() in response.content
    assert User.objects.get(pk=acme_world.eddie.pk).password == before


def test_password_reset_mails_a_one_time_link_that_sets_a_new_password(acme_world: Acme) -> None:
    client = Client()
    response = client.post("/accounts/password/reset/", {"email": "vera@acme.test"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", str(mail.outbox[0].body))
    assert link is not None
    form = client.get(link.group(1), follow=True)
    assert b"Choose a new password" in form.content
    new = "reset-Long-secret-77"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done.status_code == 302
    assert User.objects.get(pk=acme_world.vera.pk).check_password(new)
    # The link works once.
    assert b"no longer works" in client.get(link.group(1), follow=True).content


def test_password_reset_for_an_unknown_address_sends_nothing_and_says_the_same(db: None) -> None:
    response = Client().post("/accounts/password/reset/", {"email": "ghost@nowhere.test"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/reset/sent/"
    assert mail.outbox == []


def test_token_secret_is_shown_once_and_stored_only_hashed(
    acme_world: Acme, page_client: ClientFor
) -> None:
    client = page_client(acme_world.olivia)
    created = client.post(
        "/accounts/tokens/",
        {"name": "Grafana", "read_only": "on", "teams": ["acme"], "expires_in_days": "30"},
    )
    assert created.status_code == 302, "post/redirect/get: a reload must not create another"
    assert created["Location"] == "/accounts/tokens/"
    response = client.get("/accounts/tokens/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(rb'data-testid="token-secret">([^<]+)<', response.content)
    assert secret is not None
    raw = secret.group(1).decode()
    token = PersonalAccessToken.objects.get(user=acme_world.olivia, name="Grafana")
    assert token.token_hash == hash_token(raw)
    assert token.read_only
    assert not token.all_teams
    assert list(token.teams.values_list("slug", flat=True)) == ["acme"]
    reloaded = client.get("/accounts/tokens/").content
    assert raw.encode() not in reloaded
    assert PersonalAccessToken.objects.filter(user=acme_world.olivia).count() == 1
    assert b"Created</th>" in reloaded
    assert b"Last used</th>" in reloaded
    assert b">never<" in reloaded
    assert AuditEvent.objects.filter(event="account.token.created").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "all_teams": "on", "expires_in_days": "30"}, b"id_name_error"),
        ({"name": "x", "expires_in_days": "30"}, b"tick \xe2\x80\x9cAll my teams\xe2\x80\x9d"),
        ({"name": "x", "all_teams": "on", "expires_in_days": "9999"}, b"id_expires_in_days_error"),
        ({"name": "x", "teams": ["globex"], "expires_in_days": "30"}, b"id_teams_error"),
    ],
)
def test_token_bad_input_or_scope_above_the_user_creates_nothing(
    acme_world: Acme,
    globex_world: Globex,
    page_client: ClientFor,
    data: dict[str, object],
    message: bytes,
) -> None:
    response = page_client(acme_world.olivia).post("/accounts/tokens/", data)
    assert response.status_code == 400
    assert message in response.content
    assert not PersonalAccessToken.objects.filter(user=acme_world.olivia).exists()


def test_revoking_a_token_needs_a_confirmation_and_is_audited(
    acme_world: Acme, page_client: ClientFor
) -> None:
    token = token_create(principal=Principal.for_user(acme_world.olivia), name="CI").token
    client = page_client(acme_world.olivia)
    url = f"/accounts/tokens/{token.pk}/revoke/"
    assert b"Revoke \xe2\x80\x9cCI\xe2\x80\x9d?" in client.get(url).content
    assert PersonalAccessToken.objects.get(pk=token.pk).revoked_at is None
    assert client.post(url).status_code == 302
    assert PersonalAccessToken.objects.get(pk=token.pk).revoked_at is not None
    assert AuditEvent.objects.filter(event="account.token.revoked").exists()


def test_someone_elses_token_is_not_found_and_stays_active(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    token = token_create(principal=Principal.for_user(globex_world.oscar), name="Oscar's").token
    client = page_client(acme_world.olivia)
    assert client.get(f"/accounts/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert b"Oscar" not in client.get("/accounts/tokens/").content
