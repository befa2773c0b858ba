"""Password reset through the emailed link: audited, ends sessions, revokes tokens.

Decision (documented in ``password_reset_complete``): a completed reset ends every session of
the account and revokes all its active personal access tokens; the audit row lists the revoked
prefixes. The request is audited too, without the address typed or the link.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import PersonalAccessToken, User
from apps.accounts.principal import Principal
from apps.accounts.services import password_reset_complete, token_create
from apps.audit.models import AuditEvent
from apps.core.errors import PermissionDenied, ValidationError
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.django_db
NEW = "reset-Long-secret-77"


def _request_link(client: Client, email: str) -> str:
    response = client.post("/accounts/password/reset/", {"email": email})
    assert response.status_code == 302
    body = str(mail.outbox[-1].body)
    found = re.search(r"http://testserver(/accounts/password/reset/\S+/)", body)
    assert found is not None
    return found.group(1)


def _platform_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(team_key=0).order_by("id"))


def test_reset_request_is_audited_without_the_link_or_the_typed_address(acme_world: Acme) -> None:
    before = len(_platform_events())
    link = _request_link(Client(), "  VERA@acme.test ")
    events = _platform_events()[before:]
    assert [e.event for e in events] == ["account.password.reset_requested"]
    row = events[0]
    assert row.target_id == str(acme_world.vera.pk)
    assert row.actor_label == "anonymous"
    token_part = link.rstrip("/").rsplit("/", 1)[-1]
    stored = repr([row.before, row.after, row.target_label, row.actor_label, row.user_agent])
    assert token_part not in stored
    assert "VERA@acme.test" not in stored


def test_reset_request_for_an_unknown_address_writes_no_row(db: None) -> None:
    before = AuditEvent.objects.count()
    response = Client().post("/accounts/password/reset/", {"email": "ghost@nowhere.test"})
    assert response.status_code == 302
    assert AuditEvent.objects.count() == before


def test_reset_through_the_link_ends_sessions_revokes_tokens_and_audits(acme_world: Acme) -> None:
    vera = acme_world.vera
    elsewhere = Client()
    elsewhere.force_login(vera)
    assert elsewhere.get("/?all=1").status_code == 200
    created = token_create(principal=Principal.for_user(vera), name="ci")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret}")
    assert api.get("/api/v1/me/").status_code == 200

    client = Client()
    link = _request_link(client, vera.email)
    form = client.get(link, follow=True)
    done = client.post(form.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    assert done.status_code == 302
    assert done["Location"] == "/accounts/password/reset/complete/"

    vera.refresh_from_db()
    assert vera.check_password(NEW)
    # The other browser is signed out, the token is dead at once.
    assert elsewhere.get("/?all=1").status_code == 302
    assert api.get("/api/v1/me/").status_code == 401
    assert PersonalAccessToken.objects.get(pk=created.token.pk).revoked_at is not None
    row = _platform_events()[-1]
    assert row.event == "account.password.reset"
    assert row.target_id == str(vera.pk)
    assert row.after == {"logins_ended": 1, "revoked_prefixes": [created.token.prefix]}
    assert created.secret not in repr(row.after)


def test_reset_while_signed_in_as_that_user_signs_this_browser_out_too(acme_world: Acme) -> None:
    client = Client()
    client.force_login(acme_world.eddie)
    link = _request_link(client, acme_world.eddie.email)
    form = client.get(link, follow=True)
    done = client.post(form.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    assert done.status_code == 302
    assert client.get("/").status_code == 302  # to the login page
    assert Client().login(email=acme_world.eddie.email, password=NEW)


def test_weak_new_password_changes_nothing(acme_world: Acme) -> None:
    vera = acme_world.vera
    token = token_create(principal=Principal.for_user(vera), name="kept").token
    client = Client()
    link = _request_link(client, vera.email)
    form = client.get(link, follow=True)
    before = AuditEvent.objects.count()
    response = client.post(form.redirect_chain[-1][0], {"new_password1": "1", "new_password2": "1"})
    assert response.status_code == 200
    assert b"error" in response.content
    assert User.objects.get(pk=vera.pk).check_password(PASSWORD)
    assert PersonalAccessToken.objects.get(pk=token.pk).revoked_at is None
    assert AuditEvent.objects.count() == before


def test_service_refuses_weak_passwords_and_deactivated_accounts(acme_world: Acme) -> None:
    vera = acme_world.vera
    with pytest.raises(ValidationError):
        password_reset_complete(user=vera, new_password="short")
    vera.is_active = False
    vera.save(update_fields=["is_active"])
    with pytest.raises(PermissionDenied):
        password_reset_complete(user=vera, new_password=NEW)
    assert User.objects.get(pk=vera.pk).check_password(PASSWORD)
