"""What a row says about who, where and what — and that secrets never reach it (family 30)."""

from __future__ import annotations

import json

import pytest
from django.db import connection, transaction
from django.test import RequestFactory

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.accounts.services import token_create
from apps.audit.models import AuditEvent
from apps.audit.redaction import REDACTED, is_secret_key, redact
from apps.audit.services import AuditTarget, AuditUsageError, audit_record
from apps.core.audit_context import context_from_request
from apps.teams.models import Application, Team

from .conftest import seal_now

CANARY = "canary-7f3a9c1e-do-not-leak"


def test_user_actor_request_and_target_are_snapshotted(
    auditor: User, acme_team: Team, acme_app: Application
) -> None:
    request = RequestFactory().post(
        "/x",
        REMOTE_ADDR="203.0.113.9",
        HTTP_USER_AGENT="pytest-agent/1.0",
        HTTP_X_FORWARDED_FOR="198.51.100.1",
    )
    with transaction.atomic():
        row = audit_record(
            event="team.application.updated",
            principal=Principal.for_user(auditor),
            team=acme_team,
            application=acme_app,
            target=acme_app,
            before={"name": "a"},
            after={"name": "b"},
            context=context_from_request(request),
        )
    seal_now()
    row = AuditEvent.objects.get(pk=row.pk)
    assert (row.actor_type, row.actor_id, row.actor_label) == (
        "user",
        str(auditor.pk),
        auditor.email,
    )
    assert (row.application_key, row.application_name) == (acme_app.pk, "Line 1")
    assert (row.target_type, row.target_id, row.target_label) == (
        "teams.application",
        str(acme_app.pk),
        "Line 1",
    )
    # X-Forwarded-For is client-controlled: only REMOTE_ADDR is recorded.
    assert (row.ip, row.user_agent) == ("203.0.113.9", "pytest-agent/1.0")
    assert row.compute_hash() == row.hash


def test_ipv6_address_is_stored_in_the_form_that_was_hashed(auditor: User, acme_team: Team) -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="2001:0db8:0000:0000:0000:0000:0000:0001")
    with transaction.atomic():
        row = audit_record(
            event="test.thing.done",
            principal=Principal.for_user(auditor),
            team=acme_team,
            context=context_from_request(request),
        )
    seal_now()
    stored = AuditEvent.objects.get(pk=row.pk)
    assert stored.ip == "2001:db8::1"
    assert stored.compute_hash() == stored.hash


def test_token_system_anonymous_and_device_actors(auditor: User, acme_team: Team) -> None:
    created = token_create(principal=Principal.for_user(auditor), name="ci")

    class Device:
        pk = 7

    principals = [
        Principal.for_token(created.token),
        Principal.system(),
        Principal.system("rollout-reconciler"),
        Principal.anonymous(),
        Principal.for_subject("device", Device(), "press-7"),
    ]
    with transaction.atomic():
        rows = [
            audit_record(event="test.thing.done", principal=principal, team=acme_team)
            for principal in principals
        ]
    seal_now()
    rows = [AuditEvent.objects.get(pk=row.pk) for row in rows]
    assert [(r.actor_type, r.actor_id, r.actor_label) for r in rows] == [
        ("token", str(created.token.pk), f"{auditor.email} (token {created.token.prefix})"),
        ("system", "", "system"),
        ("system", "rollout-reconciler", "system: rollout-reconciler"),
        ("system", "", "anonymous"),
        ("device", "7", "press-7"),
    ]
    assert all(row.compute_hash() == row.hash for row in rows)


def test_anything_but_a_principal_is_refused_as_actor(auditor: User, acme_team: Team) -> None:
    with transaction.atomic(), pytest.raises(AuditUsageError, match="must be a Principal"):
        audit_record(event="test.thing.done", principal=auditor, team=acme_team)  # type: ignore[arg-type]  # the point of the test
    assert not AuditEvent.objects.filter(event="test.thing.done").exists()


def test_the_target_may_outlive_its_object(auditor: User, acme_team: Team) -> None:
    with transaction.atomic():
        row = audit_record(
            event="test.thing.deleted",
            principal=Principal.for_user(auditor),
            team=acme_team,
            target=AuditTarget("flows.flow", "42", "Packaging line"),
        )
    assert (row.target_type, row.target_id, row.target_label) == (
        "flows.flow",
        "42",
        "Packaging line",
    )


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "new_password",
        "clientSecret",
        "api_key",
        "API-KEY",
        "refresh_tokens",
        "token",
        "credentials",
        "private.key",
        "Authorization",
        "session_cookie",
    ],
)
def test_secret_key_names_are_recognised(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["name", "email", "role", "keyboard_layout", "monkey", "slug"])
def test_ordinary_key_names_are_kept(key: str) -> None:
    assert not is_secret_key(key)


def test_nested_secrets_are_redacted_and_allowed_keys_kept() -> None:
    value = {
        "name": "ok",
        "prefix": "mfp_abc123",
        "permission_keys": ["flow:edit"],
        "nodes": [{"id": 1, "credentials": {"user": "u", "password": CANARY}}],
        "config": {"apiKey": CANARY, "note": f"token mfp_{'x' * 43} pasted"},
    }
    assert redact(value) == {
        "name": "ok",
        "prefix": "mfp_abc123",
        "permission_keys": ["flow:edit"],
        "nodes": [{"id": 1, "credentials": REDACTED}],
        "config": {"apiKey": REDACTED, "note": f"token {REDACTED} pasted"},
    }


def test_canary_secret_never_reaches_the_database(auditor: User, acme_team: Team) -> None:
    with transaction.atomic():
        audit_record(
            event="test.secret.changed",
            principal=Principal.for_user(auditor),
            team=acme_team,
            before={"password": CANARY, "smtp": {"secret": CANARY}},
            after={"credentials": [CANARY], "list": [{"token": CANARY}]},
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM audit_auditevent")
        dump = json.dumps(cursor.fetchall(), default=str)
    assert CANARY not in dump
    assert REDACTED in dump


def test_token_creation_audit_row_holds_no_secret(auditor: User) -> None:
    created = token_create(principal=Principal.for_user(auditor), name="deploy")
    row = AuditEvent.objects.filter(event="account.token.created").latest("seq")
    assert created.secret not in json.dumps(row.after)
    assert created.secret not in row.target_label


def test_request_logs_do_not_carry_link_secrets(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from apps.audit.redaction import redact_path

    logged = redact_path("Not Found: /invitations/AbC-123_x/")
    assert logged == "Not Found: /invitations/[redacted]/"
    assert (
        redact_path("/api/v1/invitations/AbC/accept/") == "/api/v1/invitations/[redacted]/accept/"
    )
    assert (
        redact_path("/accounts/password/reset/Mg/dio6mr-075acf8/")
        == "/accounts/password/reset/Mg/[redacted]/"
    )
    assert redact_path("/accounts/password/reset/Mg/set-password/").endswith("/set-password/")
    caplog.set_level(logging.WARNING)
    logging.getLogger("django.request").warning("%s: %s", "Conflict", "/invitations/S3cr3t/")
    logging.getLogger("uvicorn.access").warning("GET /invitations/S3cr3t/ mfp_" + "a" * 43)
    assert "S3cr3t" not in caplog.text
    assert "mfp_aaaa" not in caplog.text
    assert caplog.text.count("[redacted]") == 3
