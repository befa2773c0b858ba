"""The hash chain: per-team sequence, links, and audit_verify finding tampering."""

from __future__ import annotations

import itertools
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.chain import GENESIS_HASH
from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.services import audit_record
from apps.audit.verification import audit_chain_verify
from apps.teams.models import Team

from .conftest import seal_now


def _record(team: Team | None, actor: User | None, n: int, event: str = "test.thing.done") -> None:
    principal = Principal.system() if actor is None else Principal.for_user(actor)
    for index in range(n):
        with transaction.atomic():
            audit_record(event=event, principal=principal, team=team, after={"index": index})
    seal_now()


def _drop_update_guard() -> None:
    """Play an attacker with database access: the append-only trigger is the first to go.

    DDL is transactional on SQLite and PostgreSQL, so the test transaction restores it.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER audit_auditevent_no_update")
        else:
            cursor.execute(
                "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_no_update"
            )


def _verify(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("audit_verify", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_each_team_has_its_own_gapless_sequence(
    auditor: User, acme_team: Team, globex_team: Team
) -> None:
    acme_before = AuditEvent.objects.filter(team_key=acme_team.pk).count()
    globex_before = AuditEvent.objects.filter(team_key=globex_team.pk).count()
    _record(acme_team, auditor, 3)
    _record(globex_team, None, 2)

    acme = list(AuditEvent.objects.filter(team_key=acme_team.pk).order_by("seq"))
    globex = list(AuditEvent.objects.filter(team_key=globex_team.pk).order_by("seq"))
    assert [e.seq for e in acme] == list(range(1, acme_before + 4))
    assert [e.seq for e in globex] == list(range(1, globex_before + 3))
    assert acme[0].prev_hash == GENESIS_HASH
    for previous, current in itertools.pairwise(acme):
        assert current.prev_hash == previous.hash
    head = AuditChainHead.objects.get(chain_key=acme_team.pk)
    assert (head.last_seq, head.last_hash) == (acme[-1].seq, acme[-1].hash)
    assert all(e.team_slug == "acme-audit" for e in acme)


def test_platform_events_form_chain_zero(auditor: User) -> None:
    # user_create already recorded account.user.created on the platform chain.
    events = list(AuditEvent.objects.filter(team_key=0).order_by("seq"))
    assert events[0].event == "account.user.created"
    assert events[0].team_slug == ""
    assert audit_chain_verify(0).broken is None


def test_audit_verify_passes_on_an_untouched_trail(
    auditor: User, acme_team: Team, globex_team: Team
) -> None:
    _record(acme_team, auditor, 5)
    out, _err = _verify()
    assert "BROKEN" not in out
    assert "audit chain(s) verified" in out
    out, _ = _verify("--team", "acme-audit")
    assert "acme-audit" in out
    assert "globex-audit" not in out


def test_raw_sql_edit_is_found_with_team_seq_and_event_id(auditor: User, acme_team: Team) -> None:
    _record(acme_team, auditor, 6)
    victim = AuditEvent.objects.get(team_key=acme_team.pk, seq=4)
    _drop_update_guard()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET actor_label = %s WHERE id = %s", ["mallory", victim.pk]
        )

    with pytest.raises(CommandError, match="1 of"):
        _verify("--team", "acme-audit")
    report = audit_chain_verify(acme_team.pk)
    assert report.broken is not None
    assert (report.broken.seq, report.broken.event_id) == (4, victim.pk)
    assert "altered" in report.broken.reason
    assert "acme-audit" in str(report.broken)


def test_rehashing_the_edited_row_still_breaks_the_next_link(
    auditor: User, acme_team: Team
) -> None:
    _record(acme_team, auditor, 4)
    victim = AuditEvent.objects.get(team_key=acme_team.pk, seq=2)
    victim.actor_label = "mallory"
    forged = victim.compute_hash()
    _drop_update_guard()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET actor_label = %s, hash = %s WHERE id = %s",
            ["mallory", forged, victim.pk],
        )
    report = audit_chain_verify(acme_team.pk)
    assert report.broken is not None
    assert report.broken.seq == 3
    assert "prev_hash" in report.broken.reason


def test_deleted_middle_row_is_a_sequence_gap(auditor: User, acme_team: Team) -> None:
    _record(acme_team, auditor, 5)
    victim = AuditEvent.objects.get(team_key=acme_team.pk, seq=3)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [victim.pk])
    report = audit_chain_verify(acme_team.pk)
    assert report.broken is not None
    assert report.broken.seq == 3
    assert "gap" in report.broken.reason


def test_truncated_tail_is_found_through_the_head(auditor: User, acme_team: Team) -> None:
    _record(acme_team, auditor, 5)
    last = AuditEvent.objects.filter(team_key=acme_team.pk).order_by("-seq").first()
    assert last is not None
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [last.pk])
    report = audit_chain_verify(acme_team.pk)
    assert report.broken is not None
    assert report.broken.event_id is None
    assert "head records seq" in report.broken.reason


def test_verify_unknown_team_is_a_clear_error(db: None) -> None:
    with pytest.raises(CommandError, match="No audit chain for team 'nope'"):
        _verify("--team", "nope")


def test_team_deletion_keeps_its_trail_verifiable(auditor: User, acme_team: Team) -> None:
    from apps.teams.services import team_delete

    team_key = acme_team.pk
    _record(acme_team, auditor, 2)
    team_delete(principal=Principal.for_user(auditor), team=acme_team)
    assert not Team.objects.filter(pk=team_key).exists()
    events = AuditEvent.objects.filter(team_key=team_key)
    assert events.filter(event="team.team.deleted").count() == 1
    assert audit_chain_verify(team_key).broken is None
    out, _ = _verify("--team", "acme-audit")
    assert "ok" in out
