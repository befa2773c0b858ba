"""Concurrent writers on one team's chain: no duplicate or skipped seq, chain verifies."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.audit.verification import audit_chain_verify

from .conftest import ChainOnlyTeam, run_concurrently, seal_now

THREADS = 6
EVENTS_PER_THREAD = 15


@pytest.mark.django_db(transaction=True)
def test_parallel_writers_produce_one_gapless_chain() -> None:
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith("file:"):
        pytest.skip("in-memory shared-cache SQLite has no busy timeout between threads")
    team = ChainOnlyTeam(990001, "race")

    def writer(index: int) -> None:
        for number in range(EVENTS_PER_THREAD):
            with transaction.atomic():
                audit_record(
                    event="test.race.written",
                    principal=Principal.system(),
                    team=team,
                    after={"thread": index, "number": number},
                )

    errors, elapsed = run_concurrently(THREADS, writer)
    seal_now()
    assert errors == []
    seqs = list(
        AuditEvent.objects.filter(team_key=team.pk).order_by("seq").values_list("seq", flat=True)
    )
    total = THREADS * EVENTS_PER_THREAD
    assert seqs == list(range(1, total + 1))
    assert audit_chain_verify(team.pk).broken is None
    print(
        f"audit chain: {total} events from {THREADS} concurrent writers in {elapsed:.2f} s "
        f"({total / elapsed:.0f} events/s, {connection.vendor}), 0 gaps, 0 duplicates"
    )
