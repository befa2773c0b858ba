"""Append, then seal in batches: concurrent writers, the trigger, crashes, retention.

Deferred sealing runs on PostgreSQL (SQLite seals inline, covered by every other audit test);
CI runs this file on PostgreSQL in its second suite stage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.retention import audit_chain_purge
from apps.audit.sealing import audit_chain_seal, audit_seal_pending, unsealed_events
from apps.audit.services import audit_record
from apps.audit.tasks import seal_audit_events_task
from apps.audit.verification import audit_chain_verify
from apps.teams.models import Team

from .conftest import ChainOnlyTeam, run_concurrently, seal_now

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="deferred sealing runs on PostgreSQL only"
)
ROOT = Path(__file__).resolve().parents[3]
WRITERS = 8
EVENTS_PER_WRITER = 200


def _snapshot(chain_key: int) -> list[tuple[Any, ...]]:
    return list(
        AuditEvent.objects.filter(team_key=chain_key)
        .order_by("id")
        .values_list("id", "actor_label", "seq", "hash")
    )


def _write(team: Any, count: int, **after: Any) -> None:
    for number in range(count):
        with transaction.atomic():
            audit_record(
                event="test.fleet.reported",
                principal=Principal.system(),
                team=team,
                after={**after, "n": number},
            )


@postgres_only
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_eight_writers_into_one_team_are_all_sealed_in_commit_order() -> None:
    team = ChainOnlyTeam(990101, "fleet")
    errors, elapsed = run_concurrently(
        WRITERS, lambda index: _write(team, EVENTS_PER_WRITER, writer=index)
    )
    left_for_flush = unsealed_events(team.pk).count()
    audit_seal_pending(wait=True)

    assert errors == []
    total = WRITERS * EVENTS_PER_WRITER
    rows = list(AuditEvent.objects.filter(team_key=team.pk).order_by("seq"))
    assert [row.seq for row in rows] == list(range(1, total + 1))
    report = audit_chain_verify(team.pk)
    assert (report.broken, report.checked, report.unsealed) == (None, total, 0)
    # A writer commits event n before it appends n + 1, so the sealer must chain them so too.
    numbers_by_writer: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        assert row.after is not None
        numbers_by_writer[row.after["writer"]].append(row.after["n"])
    assert all(numbers == list(range(EVENTS_PER_WRITER)) for numbers in numbers_by_writer.values())
    assert len(numbers_by_writer) == WRITERS
    print(
        f"audit sealing: {total} events from {WRITERS} writers into one team in {elapsed:.2f} s "
        f"({total / elapsed:.0f} events/s); {total - left_for_flush} sealed by the background "
        f"sealer before the writers finished, {left_for_flush} by the final flush"
    )


@postgres_only
def test_rows_are_listed_unsealed_until_the_sealer_links_them(
    auditor: User, acme_team: Team
) -> None:
    seal_now()
    with transaction.atomic():
        row = audit_record(
            event="test.thing.done", principal=Principal.for_user(auditor), team=acme_team
        )
    assert (row.seq, row.prev_hash, row.hash) == (None, None, None)
    before = audit_chain_verify(acme_team.pk)
    assert (before.broken, before.unsealed) == (None, 1)
    assert AuditEvent.objects.filter(team_key=acme_team.pk).first() == row  # newest first

    result = audit_chain_seal(acme_team.pk)
    row.refresh_from_db()
    head = AuditChainHead.objects.get(chain_key=acme_team.pk)
    assert (result.sealed, result.busy) == (1, False)
    assert (head.last_seq, head.last_hash) == row.chain_link()
    assert row.compute_hash() == row.hash
    after = audit_chain_verify(acme_team.pk)
    assert (after.broken, after.unsealed, after.checked) == (None, 0, before.checked + 1)


@postgres_only
def test_the_trigger_lets_only_the_sealers_one_transition_through(
    auditor: User, acme_team: Team
) -> None:
    with transaction.atomic():
        pending = audit_record(
            event="test.thing.done", principal=Principal.for_user(auditor), team=acme_team
        )
    before = _snapshot(acme_team.pk)
    # Sealing while also changing the content is refused ...
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE audit_auditevent SET seq = 1, prev_hash = %s, hash = %s, "
            "actor_label = 'mallory' WHERE id = %s",
            ["0" * 64, "f" * 64, pending.pk],
        )
    assert _snapshot(acme_team.pk) == before
    # ... and so is any change of a sealed row, its seal included.
    seal_now()
    sealed = _snapshot(acme_team.pk)
    for statement in (
        "UPDATE audit_auditevent SET hash = repeat('f', 64) WHERE id = %s",
        "UPDATE audit_auditevent SET seq = NULL, prev_hash = NULL, hash = NULL WHERE id = %s",
        "UPDATE audit_auditevent SET actor_label = 'mallory' WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [pending.pk])
    assert _snapshot(acme_team.pk) == sealed


@postgres_only
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_sealer_killed_mid_batch_loses_nothing_and_the_next_one_resumes() -> None:
    team = ChainOnlyTeam(990102, "crash")
    _write(team, 3, phase="before")
    audit_seal_pending(wait=True)
    held, release = threading.Event(), threading.Event()

    def hold_the_head() -> None:
        # Another sealer at work: this process's own sealer finds the chain busy and leaves.
        try:
            with transaction.atomic():
                AuditChainHead.objects.select_for_update().get(chain_key=team.pk)
                held.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_head)
    holder.start()
    assert held.wait(10)
    _write(team, 40, phase="pending")
    time.sleep(0.3)  # past the background sealer's debounce: it tried and found the chain busy
    release.set()
    holder.join(10)
    assert unsealed_events(team.pk).count() == 40
    head_before = AuditChainHead.objects.get(chain_key=team.pk)

    script = (
        "import sys, threading, django\n"
        "django.setup()\n"
        "from django.db import connection\n"
        "from apps.audit.sealing import audit_chain_seal\n"
        "def pause(execute, sql, params, many, context):\n"
        "    result = execute(sql, params, many, context)\n"
        "    if sql.startswith('UPDATE audit_auditevent'):\n"
        "        print('mid-batch', flush=True)\n"
        "        threading.Event().wait()\n"
        "    return result\n"
        "with connection.execute_wrapper(pause):\n"
        "    audit_chain_seal(int(sys.argv[1]), wait=True)\n"
    )
    settings_dict = connection.settings_dict
    url = (
        f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/"
        f"{settings_dict['NAME']}"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "MANIFOLD_DATABASE_URL": url,
    }
    with subprocess.Popen(
        [sys.executable, "-c", script, str(team.pk)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    ) as sealer:
        try:
            assert sealer.stdout is not None
            assert sealer.stdout.readline().strip() == "mid-batch"
            # The killed sealer has updated the rows but neither moved the head nor committed.
            os.kill(sealer.pid, signal.SIGKILL)
        finally:
            if sealer.poll() is None:
                sealer.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and unsealed_events(team.pk).count() != 40:
        time.sleep(0.05)  # PostgreSQL rolls back once it sees the closed socket
    assert unsealed_events(team.pk).count() == 40
    head_after_kill = AuditChainHead.objects.get(chain_key=team.pk)
    assert (head_after_kill.last_seq, head_after_kill.last_hash) == (
        head_before.last_seq,
        head_before.last_hash,
    )

    assert seal_audit_events_task.apply().get() == {str(team.pk): 40}
    report = audit_chain_verify(team.pk)
    assert (report.broken, report.checked, report.unsealed) == (None, 43, 0)


@postgres_only
def test_retention_never_deletes_unsealed_rows_nor_breaks_the_chain(
    auditor: User, acme_team: Team
) -> None:
    with transaction.atomic():
        audit_record(event="test.thing.done", principal=Principal.for_user(auditor), team=acme_team)
    seal_now()
    with transaction.atomic():
        waiting = audit_record(
            event="test.thing.waiting", principal=Principal.for_user(auditor), team=acme_team
        )
    sealed_count = AuditEvent.objects.filter(team_key=acme_team.pk, seq__isnull=False).count()

    # Everything is past this cutoff, the unsealed row too.
    result = audit_chain_purge(chain_key=acme_team.pk, cutoff=timezone.now())
    assert result.deleted == sealed_count
    remaining = AuditEvent.objects.filter(team_key=acme_team.pk)
    assert set(remaining.values_list("event", flat=True)) == {
        "test.thing.waiting",
        "audit.events.purged",
    }
    assert remaining.filter(seq__isnull=True).count() == 2
    seal_now()
    waiting.refresh_from_db()
    head = AuditChainHead.objects.get(chain_key=acme_team.pk)
    assert waiting.seq == head.anchor_seq + 1
    assert waiting.prev_hash == head.anchor_hash
    report = audit_chain_verify(acme_team.pk)
    assert (report.broken, report.checked, report.unsealed) == (None, 2, 0)
