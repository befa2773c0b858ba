"""Concurrent writers on one team's chain: no duplicate or skipped seq, chain verifies."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import close_old_connections, connection, transaction

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.audit.verification import audit_chain_verify

THREADS = 6
EVENTS_PER_THREAD = 15


class _Team:
    """The chain only needs the team's id and slug."""

    def __init__(self, pk: int, slug: str) -> None:
        self.pk = pk
        self.slug = slug


@pytest.mark.django_db(transaction=True)
def test_parallel_writers_produce_one_gapless_chain() -> None:
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith("file:"):
        pytest.skip("in-memory shared-cache SQLite has no busy timeout between threads")
    team = _Team(990001, "race")
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def writer(index: int) -> None:
        try:
            barrier.wait()
            for number in range(EVENTS_PER_THREAD):
                with transaction.atomic():
                    audit_record(
                        event="test.race.written",
                        principal=Principal.system(),
                        team=team,
                        after={"thread": index, "number": number},
                    )
        except BaseException as error:
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.perf_counter() - started

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
