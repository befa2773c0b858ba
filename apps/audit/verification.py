"""Walk each team's chain and report the first broken link.

Only sealed rows are part of a chain; rows still waiting for their sealer are counted and
reported (``unsealed``), not judged. On PostgreSQL each chain is read in one REPEATABLE READ
snapshot so a sealer committing meanwhile cannot look like a broken tail.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.db import connection, transaction
from django.db.models import QuerySet

from apps.audit.models import AuditChainHead, AuditEvent

VERIFY_CHUNK = 2000


@dataclass(frozen=True)
class ChainBreak:
    """The first place a chain stops being what was written."""

    chain_key: int
    team_slug: str
    seq: int
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        team = self.team_slug or ("platform" if self.chain_key == 0 else f"#{self.chain_key}")
        event = f"event id {self.event_id}" if self.event_id is not None else "no event"
        return f"team {team} (chain {self.chain_key}): seq {self.seq}, {event}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    chain_key: int
    team_slug: str
    checked: int
    broken: ChainBreak | None
    unsealed: int = 0


def audit_chain_verify(chain_key: int) -> ChainReport:
    """Verify one chain's sealed events from its retained anchor to its head, in constant memory."""
    if connection.in_atomic_block or connection.vendor != "postgresql":
        return _verify_chain(chain_key)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return _verify_chain(chain_key)


def _verify_chain(chain_key: int) -> ChainReport:
    events = AuditEvent.objects.filter(team_key=chain_key)
    unsealed = events.filter(seq__isnull=True).count()
    report = _verify_sealed(chain_key, events.filter(seq__isnull=False))
    return replace(report, unsealed=unsealed)


def _verify_sealed(chain_key: int, events: QuerySet[AuditEvent]) -> ChainReport:
    head = AuditChainHead.objects.filter(chain_key=chain_key).first()
    if head is None:
        first = events.order_by("seq").first()
        slug = first.team_slug if first else ""
        broken = (
            ChainBreak(
                chain_key,
                slug,
                first.seq or 0 if first else 0,
                first.pk if first else None,
                "events exist but the chain head is missing",
            )
            if first
            else None
        )
        return ChainReport(chain_key, slug, 0, broken)

    expected_seq = head.anchor_seq + 1
    expected_prev = head.anchor_hash
    checked = 0
    rows = events.filter(seq__gt=head.anchor_seq).order_by("seq").iterator(chunk_size=VERIFY_CHUNK)
    for row in rows:
        checked += 1
        reason = None
        if row.seq is not None and row.seq > head.last_seq:
            reason = f"sealed event beyond the chain head (head records seq {head.last_seq})"
        elif row.seq != expected_seq:
            reason = f"sequence gap: expected seq {expected_seq}, found {row.seq}"
        elif row.prev_hash != expected_prev:
            reason = "prev_hash does not match the previous event's hash"
        elif row.compute_hash() != row.hash:
            reason = "content does not match its hash (row was altered)"
        if reason is not None:
            return ChainReport(
                chain_key,
                head.team_slug,
                checked,
                ChainBreak(chain_key, row.team_slug, expected_seq, row.pk, reason),
            )
        sealed_seq, expected_prev = row.chain_link()
        expected_seq = sealed_seq + 1
    if expected_seq - 1 != head.last_seq or expected_prev != head.last_hash:
        return ChainReport(
            chain_key,
            head.team_slug,
            checked,
            ChainBreak(
                chain_key,
                head.team_slug,
                expected_seq,
                None,
                f"chain ends at seq {expected_seq - 1} but the head records seq {head.last_seq}"
                " (events deleted from the end, or the head was altered)",
            ),
        )
    return ChainReport(chain_key, head.team_slug, checked, None)


def audit_verify_all(*, chain_keys: list[int] | None = None) -> list[ChainReport]:
    """Verify the given chains, or every chain that has a head or events."""
    if chain_keys is None:
        keys = set(AuditChainHead.objects.values_list("chain_key", flat=True))
        keys |= set(AuditEvent.objects.values_list("team_key", flat=True).distinct())
        chain_keys = sorted(keys)
    return [audit_chain_verify(key) for key in chain_keys]
