"""Sealing: link appended audit events into their team's hash chain, one sealer per chain.

Writers only INSERT (the id comes from the table's own sequence), so writers of one team no
longer queue behind each other's transactions. Sealing is done apart, per chain:

* a sealer takes the chain head ``FOR UPDATE SKIP LOCKED``; if another sealer holds it, it
  leaves (that one is at work and will look again, see below);
* it reads up to ``SEAL_BATCH`` committed unsealed rows in id order, gives them ``seq``,
  ``prev_hash`` and ``hash`` in that order and moves the head, all in ONE transaction: a crash
  anywhere rolls the whole batch back and the next sealer starts from the same head;
* after releasing the head it checks again, without the lock, for unsealed rows. A row whose
  own nudge was skipped because this sealer held the head had committed before that skip, so
  this later check sees it: no committed row is left behind while any sealer runs.

Who seals: each process has one background sealer thread, nudged by ``transaction.on_commit``
of every deferred append and debounced so a burst becomes one batch; Celery beat runs
``audit_seal_pending`` as the backstop (a process that died between commit and seal). SQLite
serialises all writers on its database lock anyway, so there ``audit_record`` seals inline.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import QuerySet

from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.syslog import forward_event, syslog_target

logger = logging.getLogger(__name__)

SEAL_BATCH = 500
SEAL_SQL = (
    "UPDATE audit_auditevent SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s AND hash IS NULL"
)


@dataclass(frozen=True)
class SealResult:
    chain_key: int
    sealed: int
    busy: bool  # another sealer held the chain; it finishes what this one left


def seals_inline() -> bool:
    """Whether ``audit_record`` seals in the writer's transaction (the pre-batch path).

    Always on SQLite; elsewhere only when ``AUDIT_SEALING = "inline"`` (kept to measure the old
    path in ``bench/audit.py``).
    """
    return connection.vendor == "sqlite" or getattr(settings, "AUDIT_SEALING", "") == "inline"


def unsealed_events(chain_key: int) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(team_key=chain_key, seq__isnull=True)


def _lock_head(chain_key: int, *, wait: bool) -> AuditChainHead | None:
    """The chain head locked until the transaction ends, or None if another sealer holds it."""
    heads = AuditChainHead.objects.select_for_update(skip_locked=not wait)
    head = heads.filter(chain_key=chain_key).first()
    if head is not None:
        return head
    if AuditChainHead.objects.filter(chain_key=chain_key).exists():
        return None
    # First seal of this chain. ON CONFLICT DO NOTHING waits for a racing insert to commit.
    AuditChainHead.objects.bulk_create([AuditChainHead(chain_key=chain_key)], ignore_conflicts=True)
    return heads.filter(chain_key=chain_key).first()


def _seal_batch(chain_key: int, *, wait: bool) -> tuple[list[AuditEvent], bool]:
    """Seal the next batch of ``chain_key`` in one transaction: (sealed rows, busy)."""
    with transaction.atomic():
        head = _lock_head(chain_key, wait=wait)
        if head is None:
            return [], True
        rows = list(unsealed_events(chain_key).order_by("id")[:SEAL_BATCH])
        if not rows:
            return [], False
        seq, prev_hash = head.last_seq, head.last_hash
        for row in rows:
            seq += 1
            row.seq, row.prev_hash = seq, prev_hash
            # Hashed from the values as read back, exactly what audit_verify recomputes.
            row.hash = prev_hash = row.compute_hash()
        with connection.cursor() as cursor:
            cursor.executemany(SEAL_SQL, [(r.seq, r.prev_hash, r.hash, r.pk) for r in rows])
        head.last_seq, head.last_hash = seq, prev_hash
        head.team_slug = rows[-1].team_slug
        head.save(update_fields=["last_seq", "last_hash", "team_slug"])
    return rows, False


def syslog_enabled() -> bool:
    try:
        return syslog_target() is not None
    except ValueError:
        # Reported by the audit.E001 system check; a bad forwarding URL never blocks sealing.
        logger.exception("audit syslog forwarding is misconfigured")
        return False


def audit_chain_seal(chain_key: int, *, wait: bool = False) -> SealResult:
    """Seal every committed unsealed event of one chain, batch by batch.

    ``wait=False`` leaves at once when another sealer holds the chain; ``wait=True`` queues
    behind it (tests, the benchmark and shutdown flushes want everything sealed on return).
    Sealed rows are forwarded to syslog after their batch commits, so they carry seq and hash.
    """
    total = 0
    forward = syslog_enabled()
    while True:
        rows, busy = _seal_batch(chain_key, wait=wait)
        if busy:
            return SealResult(chain_key, total, busy=True)
        total += len(rows)
        if forward:
            for row in rows:
                forward_event(row)
        # Checked after the head is released: see the module docstring.
        if not unsealed_events(chain_key).exists():
            return SealResult(chain_key, total, busy=False)


def audit_seal_pending(*, wait: bool = False) -> list[SealResult]:
    """Seal every chain that has committed unsealed events (the beat backstop)."""
    chain_keys = (
        AuditEvent.objects.filter(seq__isnull=True)
        .order_by("team_key")
        .values_list("team_key", flat=True)
        .distinct()
    )
    return [audit_chain_seal(key, wait=wait) for key in list(chain_keys)]


class _BackgroundSealer:
    """This process's sealer thread: nudged after each commit, seals the nudged chains."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._dirty: set[int] = set()
        self._thread: threading.Thread | None = None
        self._exit_hook = False
        self._busy = False

    def nudge(self, chain_key: int) -> None:
        with self._condition:
            self._dirty.add(chain_key)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)
                self._thread.start()
                if not self._exit_hook:
                    atexit.register(self.flush)
                    self._exit_hook = True
            self._condition.notify_all()  # the sealer, and anyone waiting for it to go idle

    def _take(self) -> set[int]:
        with self._condition:
            chains, self._dirty = self._dirty, set()
            return chains

    def _seal(self, chains: set[int], *, wait: bool) -> None:
        for chain_key in sorted(chains):
            try:
                audit_chain_seal(chain_key, wait=wait)
            except Exception:
                # The rows stay unsealed and listed; the next nudge or the beat task seals them.
                logger.exception("audit sealing of chain %s failed", chain_key)

    def _run(self) -> None:
        debounce = float(getattr(settings, "AUDIT_SEAL_DEBOUNCE_SECONDS", 0.05))
        while True:
            with self._condition:
                while not self._dirty:
                    self._condition.wait()
                self._busy = True
            try:
                # Let the rest of a burst commit, so it is sealed as one batch.
                threading.Event().wait(debounce)
                self._seal(self._take(), wait=False)
                with self._condition:
                    idle = not self._dirty
                if idle:
                    # An idle thread holds no connection (nor keeps a test database from dropping).
                    connections.close_all()
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is nudged and no seal runs (False after ``timeout``): a test
        database is flushed only once no sealer query can hold a lock on it."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._dirty and not self._busy, timeout)

    def flush(self) -> None:
        """Seal what this process nudged, synchronously (process exit)."""
        self._seal(self._take(), wait=True)

    def reset_after_fork(self) -> None:
        self._condition = threading.Condition()
        self._dirty = set()
        self._thread = None
        self._busy = False


_SEALER = _BackgroundSealer()
os.register_at_fork(after_in_child=_SEALER.reset_after_fork)


def audit_sealer_wait_idle(timeout: float = 10.0) -> bool:
    """Block until this process's background sealer is idle (tests, before a flush)."""
    return _SEALER.wait_idle(timeout)


def audit_seal_soon(chain_key: int) -> None:
    """``on_commit`` hook of a deferred append: have this process's sealer seal the chain."""
    _SEALER.nudge(chain_key)
