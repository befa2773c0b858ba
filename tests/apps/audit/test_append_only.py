"""Append-only: every ORM path and a raw UPDATE are refused; nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.models import AuditAppendOnlyError, AuditEvent
from apps.audit.services import AuditUsageError, audit_record
from apps.teams.models import Application, Team

from .conftest import seal_now


def _snapshot() -> list[tuple[Any, ...]]:
    return list(AuditEvent.objects.order_by("pk").values_list("pk", "actor_label", "hash"))


@pytest.fixture
def event(auditor: User, acme_team: Team) -> AuditEvent:
    with transaction.atomic():
        row = audit_record(
            event="test.thing.done", principal=Principal.for_user(auditor), team=acme_team
        )
    seal_now()
    return AuditEvent.objects.get(pk=row.pk)


def test_save_of_an_existing_event_is_refused(event: AuditEvent) -> None:
    before = _snapshot()
    event.actor_label = "mallory"
    with pytest.raises(AuditAppendOnlyError, match="updates are refused"):
        event.save()
    assert _snapshot() == before


def test_delete_of_an_event_is_refused(event: AuditEvent) -> None:
    before = _snapshot()
    with pytest.raises(AuditAppendOnlyError):
        event.delete()
    with pytest.raises(AuditAppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AuditAppendOnlyError):
        AuditEvent.objects.all().delete()
    assert _snapshot() == before


def test_queryset_update_and_bulk_writes_are_refused(event: AuditEvent) -> None:
    before = _snapshot()
    with pytest.raises(AuditAppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(actor_label="mallory")
    with pytest.raises(AuditAppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["actor_label"])
    with pytest.raises(AuditAppendOnlyError):
        AuditEvent.objects.bulk_create([AuditEvent(event="x.y.z")])
    assert _snapshot() == before


def test_rows_not_made_by_audit_record_are_refused(event: AuditEvent) -> None:
    before = _snapshot()
    with pytest.raises(AuditAppendOnlyError, match="through audit_record"):
        AuditEvent.objects.create(
            event="forged.event.added",
            actor_type="system",
            team_key=event.team_key,
            created_at=event.created_at,
            seq=999,
            prev_hash=event.hash,
            hash="f" * 64,
        )
    assert _snapshot() == before


def test_database_trigger_refuses_a_raw_update(event: AuditEvent) -> None:
    before = _snapshot()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE audit_auditevent SET actor_label = 'mallory' WHERE id = %s", [event.pk]
        )
    assert _snapshot() == before


@pytest.mark.parametrize(
    "bad_name", ["teamMemberAdded", "team.member", "Team.member.added", "team..added", ""]
)
def test_event_names_must_be_dotted(bad_name: str, auditor: User, acme_team: Team) -> None:
    before = _snapshot()
    with pytest.raises(AuditUsageError, match="dotted"), transaction.atomic():
        audit_record(event=bad_name, principal=Principal.for_user(auditor), team=acme_team)
    assert _snapshot() == before


def test_foreign_application_is_refused(
    auditor: User, acme_team: Team, globex_team: Team, acme_app: Application
) -> None:
    before = _snapshot()
    with pytest.raises(AuditUsageError, match="does not belong"), transaction.atomic():
        audit_record(
            event="test.thing.done",
            principal=Principal.for_user(auditor),
            team=globex_team,
            application=acme_app,
        )
    assert _snapshot() == before


def test_a_rolled_back_transaction_leaves_no_event_and_no_gap(
    auditor: User, acme_team: Team
) -> None:
    before = _snapshot()

    def failing_change() -> None:
        with transaction.atomic():
            audit_record(
                event="test.thing.done", principal=Principal.for_user(auditor), team=acme_team
            )
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    assert _snapshot() == before
    with transaction.atomic():
        again = audit_record(
            event="test.thing.done", principal=Principal.for_user(auditor), team=acme_team
        )
    seal_now()
    again.refresh_from_db()
    assert again.seq == AuditEvent.objects.filter(team_key=acme_team.pk).count()


@pytest.mark.django_db(transaction=True)
def test_audit_record_outside_a_transaction_is_refused() -> None:
    with pytest.raises(AuditUsageError, match=r"transaction\.atomic"):
        audit_record(event="test.thing.done", principal=Principal.system(), team=None)
    assert AuditEvent.objects.count() == 0
