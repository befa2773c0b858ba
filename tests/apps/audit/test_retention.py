"""Retention: the purge task is the only deletion path and keeps the chain verifiable."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.retention import audit_chain_purge, audit_purge_expired
from apps.audit.selectors import audit_retention_days_get
from apps.audit.services import audit_record, audit_settings_update
from apps.audit.tasks import purge_audit_events_task
from apps.audit.verification import audit_chain_verify
from apps.core.errors import ValidationError
from apps.teams.models import Team

from .conftest import seal_now


def _record(team: Team, actor: User, n: int) -> list[AuditEvent]:
    rows = []
    for index in range(n):
        with transaction.atomic():
            rows.append(
                audit_record(
                    event="test.thing.done",
                    principal=Principal.for_user(actor),
                    team=team,
                    after={"index": index},
                )
            )
        time.sleep(0.002)  # distinct created_at values for a cutoff between events
    seal_now()
    return [AuditEvent.objects.get(pk=row.pk) for row in rows]


def test_partial_purge_moves_the_anchor_and_verify_still_passes(
    auditor: User, acme_team: Team
) -> None:
    rows = _record(acme_team, auditor, 6)
    cutoff = rows[3].created_at
    result = audit_chain_purge(chain_key=acme_team.pk, cutoff=cutoff)

    remaining = AuditEvent.objects.filter(team_key=acme_team.pk).order_by("seq")
    assert remaining.first() == rows[3]
    assert result.anchor_seq == rows[2].seq
    assert result.deleted == rows[2].seq  # everything up to and including rows[2]
    head = AuditChainHead.objects.get(chain_key=acme_team.pk)
    assert (head.anchor_seq, head.anchor_hash) == (rows[2].seq, rows[2].hash)
    purge_event = remaining.last()
    assert purge_event is not None
    assert purge_event.event == "audit.events.purged"
    assert (purge_event.actor_type, purge_event.actor_label) == (
        "system",
        "system: audit-retention",
    )
    assert purge_event.after is not None
    assert purge_event.after["deleted"] == result.deleted
    assert audit_chain_verify(acme_team.pk).broken is None
    out = StringIO()
    call_command("audit_verify", "--team", "acme-audit", stdout=out)
    assert "ok" in out.getvalue()


def test_tampering_after_a_purge_is_still_found(auditor: User, acme_team: Team) -> None:
    rows = _record(acme_team, auditor, 4)
    audit_chain_purge(chain_key=acme_team.pk, cutoff=rows[2].created_at)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [rows[2].pk])
    report = audit_chain_verify(acme_team.pk)
    assert report.broken is not None
    assert "gap" in report.broken.reason


def test_task_applies_each_teams_retention(
    auditor: User, acme_team: Team, globex_team: Team
) -> None:
    audit_settings_update(principal=Principal.for_user(auditor), team=acme_team, retention_days=30)
    _record(acme_team, auditor, 3)
    globex_count = AuditEvent.objects.filter(team_key=globex_team.pk).count()

    # 31 days on: acme (30 days) is purged, globex (default 365 days) is not.
    results = audit_purge_expired(now=timezone.now() + timedelta(days=31))
    purged = {result.chain_key: result.deleted for result in results}
    assert purged[acme_team.pk] >= 3
    assert globex_team.pk not in purged
    assert AuditEvent.objects.filter(team_key=globex_team.pk).count() == globex_count
    # Only the purge record itself remains on acme's chain.
    assert list(
        AuditEvent.objects.filter(team_key=acme_team.pk).values_list("event", flat=True)
    ) == ["audit.events.purged"]
    for key in (acme_team.pk, globex_team.pk, 0):
        assert audit_chain_verify(key).broken is None
    # Nothing in any chain is past retention today.
    assert audit_purge_expired() == []


def test_celery_task_is_registered_under_its_contract_name(auditor: User, acme_team: Team) -> None:
    from config.celery import app

    assert "apps.audit.tasks.purge_audit_events_task" in app.tasks
    assert purge_audit_events_task.apply().get() == {}


def test_retention_setting_validation_changes_nothing(auditor: User, acme_team: Team) -> None:
    audit_settings_update(principal=Principal.for_user(auditor), team=acme_team, retention_days=90)
    count = AuditEvent.objects.count()
    for bad in (0, -1, 3651, "ten", 1.5, True, None):
        with pytest.raises(ValidationError, match="Retention"):
            audit_settings_update(
                principal=Principal.for_user(auditor), team=acme_team, retention_days=bad
            )
    assert audit_retention_days_get(team=acme_team) == 90
    assert AuditEvent.objects.count() == count
    change = AuditEvent.objects.filter(event="team.audit_settings.updated").latest("seq")
    assert change.after == {"audit_retention_days": 90}
    assert change.before == {"audit_retention_days": 365}
