"""Principals: who acts, built from a request or by the caller, and what services make of them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory, force_authenticate

from apps.accounts import principal as principal_module
from apps.accounts.principal import Principal, principal_from_request, register_principal_kind
from apps.accounts.services import token_create
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.core.errors import PermissionDenied
from apps.teams.models import Team
from apps.teams.services import team_create, team_delete
from tests.conftest import Acme


class Press:
    """Stands in for a device row until the devices app exists: a primary key is all it needs."""

    pk = 7


@pytest.fixture
def kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test stay in that test."""
    monkeypatch.setattr(principal_module, "_KINDS", dict(principal_module._KINDS))


def test_a_request_gives_a_token_a_user_or_anonymous(acme_world: Acme) -> None:
    created = token_create(principal=Principal.for_user(acme_world.eddie), name="cli")
    factory_request = APIRequestFactory().get("/")
    force_authenticate(factory_request, user=acme_world.eddie, token=created.token)  # type: ignore[arg-type]  # the stubs expect authtoken's Token; ours is the PAT
    through_token = principal_from_request(Request(factory_request))
    assert (through_token.kind, through_token.token, through_token.user) == (
        "token",
        created.token,
        acme_world.eddie,
    )
    page_request = RequestFactory().get("/")
    page_request.user = acme_world.eddie
    assert principal_from_request(page_request) == Principal.for_user(acme_world.eddie)
    page_request.user = AnonymousUser()
    assert principal_from_request(page_request) == Principal.anonymous()


def test_a_token_principal_carries_the_tokens_limits(acme_world: Acme) -> None:
    created = token_create(
        principal=Principal.for_user(acme_world.olivia), name="ro", read_only=True
    )
    principal = Principal.for_token(created.token)
    assert principal.read_only
    with pytest.raises(PermissionDenied):
        team_create(principal=principal, name="Shadow", slug="shadow")
    with pytest.raises(PermissionDenied):
        team_delete(principal=principal, team=acme_world.team)
    assert list(Team.objects.values_list("slug", flat=True)) == ["acme"]


def test_a_device_principal_is_audited_but_never_acts_as_a_member(acme_world: Acme) -> None:
    device = Principal.for_subject("device", Press(), "press-7")
    assert (device.kind, device.identity, device.user) == ("device", "7", None)
    with pytest.raises(PermissionDenied):
        team_delete(principal=device, team=acme_world.team)
    with pytest.raises(PermissionDenied, match="signed-in person"):
        device.require_user("create a team")
    assert Team.objects.filter(pk=acme_world.team.pk).exists()
    with transaction.atomic():
        row = audit_record(event="device.state.reported", principal=device, team=acme_world.team)
    stored = AuditEvent.objects.get(pk=row.pk)
    assert (stored.actor_type, stored.actor_id, stored.actor_label) == ("device", "7", "press-7")


def test_new_kinds_are_registered_before_use(kinds: Any, db: Any) -> None:
    with pytest.raises(ValueError, match="Unknown principal kind"):
        Principal.for_subject("robot", Press(), "arm-1")
    register_principal_kind("robot", "Robot arm")
    register_principal_kind("robot", "Robot arm")  # idempotent
    arm = Principal.for_subject("robot", Press(), "arm-1")
    assert (arm.kind, arm.label) == ("robot", "arm-1")
    with pytest.raises(ValueError, match="already registered"):
        register_principal_kind("robot", "Another thing")
    for bad in ("Robot", "robot-arm", "much_too_long_kind", ""):
        with pytest.raises(ValueError, match="lower-case identifier"):
            register_principal_kind(bad, "x")
    with pytest.raises(ValueError, match="dedicated constructor"):
        Principal.for_subject("user", Press(), "impostor")


def test_system_principals_name_their_job() -> None:
    assert (Principal.system().identity, Principal.system().label) == ("", "system")
    reconciler = Principal.system("rollout-reconciler")
    assert (reconciler.kind, reconciler.identity, reconciler.label) == (
        "system",
        "rollout-reconciler",
        "system: rollout-reconciler",
    )
    assert not reconciler.is_person
