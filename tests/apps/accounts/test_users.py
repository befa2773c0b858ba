"""Accounts: creation, email login identity, password change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.accounts.services import password_change, token_create, user_create
from apps.core.errors import Conflict, PermissionDenied, ValidationError
from apps.teams.models import Team
from tests.conftest import PASSWORD, Acme

AuditLog = Callable[[Team | int | None], list[str]]


def test_user_create_normalises_email_and_audits(db: Any, audit_log: AuditLog) -> None:
    user = user_create(email="  Mixed.Case@Example.TEST ", password=PASSWORD)
    assert user.email == "mixed.case@example.test"
    assert user.check_password(PASSWORD)
    assert audit_log(None) == ["account.user.created"]
    from apps.audit.models import AuditEvent

    assert PASSWORD not in str(list(AuditEvent.objects.values()))


@pytest.mark.parametrize("email", ["", "nope", "a@", "@b.test", "a b@c.test"])
def test_invalid_emails_are_refused(db: Any, email: str) -> None:
    with pytest.raises(ValidationError) as caught:
        user_create(email=email, password=PASSWORD)
    assert "email" in caught.value.fields
    assert not User.objects.filter(email__contains="@").exists()


def test_duplicate_email_is_refused_case_insensitively(db: Any) -> None:
    user_create(email="a@example.test", password=PASSWORD)
    with pytest.raises(Conflict):
        user_create(email="A@Example.test", password=PASSWORD)
    assert User.objects.filter(email__iexact="a@example.test").count() == 1


def test_weak_password_is_refused(db: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        user_create(email="a@example.test", password="123")
    assert "password" in caught.value.fields
    assert not User.objects.filter(email="a@example.test").exists()


def test_password_change(acme_world: Acme, eddie_api: APIClient, audit_log: AuditLog) -> None:
    wrong = eddie_api.post(
        "/api/v1/me/password/",
        {"old_password": "nope", "new_password": "An0ther-long-one"},
        format="json",
    )
    assert wrong.status_code == 400
    assert "old_password" in wrong.json()["error"]["fields"]
    ok = eddie_api.post(
        "/api/v1/me/password/",
        {"old_password": PASSWORD, "new_password": "An0ther-long-one"},
        format="json",
    )
    assert ok.status_code == 204
    acme_world.eddie.refresh_from_db()
    assert acme_world.eddie.check_password("An0ther-long-one")
    assert audit_log(None)[-1] == "account.password.changed"


def test_tokens_cannot_change_passwords(acme_world: Acme) -> None:
    created = token_create(principal=Principal.for_user(acme_world.eddie), name="cli")
    with pytest.raises(PermissionDenied):
        password_change(
            principal=Principal.for_token(created.token),
            user=acme_world.eddie,
            old_password=PASSWORD,
            new_password="An0ther-long-one",
        )
    acme_world.eddie.refresh_from_db()
    assert acme_world.eddie.check_password(PASSWORD)


def test_me(acme_world: Acme, vera_api: APIClient) -> None:
    body = vera_api.get("/api/v1/me/").json()
    assert body["email"] == "vera@acme.test"
    assert body["is_platform_admin"] is False
    assert APIClient().get("/api/v1/me/").status_code == 401
