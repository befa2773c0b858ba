"""Retention: the only path that deletes audit events, keeping the rest of the chain verifiable.

Events are removed as a contiguous prefix of a chain (lowest seqs first); the chain head records
the last removed event's seq and hash as the new anchor, and ``audit_verify`` starts from there.
Only sealed events are ever removed: an unsealed row has no place in the chain yet, whatever its
age. The purge itself is recorded as an event on the same chain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.principal import Principal
from apps.audit.models import DEFAULT_RETENTION_DAYS, AuditChainHead, AuditEvent, AuditSettings
from apps.audit.services import AuditTarget, audit_record

logger = logging.getLogger(__name__)
PURGE_BATCH = 5000


@dataclass(frozen=True)
class PurgeResult:
    chain_key: int
    deleted: int
    anchor_seq: int


def retention_days_for(chain_key: int) -> int:
    """Team setting if present; deleted teams and the platform chain use the default."""
    default = int(getattr(settings, "AUDIT_DEFAULT_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))
    if chain_key == 0:
        return default
    configured = (
        AuditSettings.objects.filter(team_id=chain_key)
        .values_list("audit_retention_days", flat=True)
        .first()
    )
    return default if configured is None else int(configured)


def audit_chain_purge(*, chain_key: int, cutoff: datetime) -> PurgeResult:
    """Delete the chain's events older than ``cutoff`` as a contiguous prefix, atomically."""
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(chain_key=chain_key)
        # seq > anchor also excludes unsealed rows (seq NULL): they are never purged.
        events = AuditEvent.objects.filter(team_key=chain_key, seq__gt=head.anchor_seq)
        # The first event to keep bounds the prefix, so an out-of-order clock cannot punch
        # holes into the middle of the chain.
        first_kept = (
            events.filter(created_at__gte=cutoff).order_by("seq").values_list("seq", flat=True)
        ).first()
        upto = head.last_seq if first_kept is None else first_kept - 1
        if upto <= head.anchor_seq:
            return PurgeResult(chain_key, 0, head.anchor_seq)
        anchor = events.get(seq=upto)
        deleted = 0
        # The model's own manager refuses deletes; the retention purge is the one exception.
        doomed = AuditEvent._base_manager.filter(
            team_key=chain_key, seq__isnull=False, seq__lte=upto
        )
        while True:
            batch = list(doomed.values_list("pk", flat=True)[:PURGE_BATCH])
            if not batch:
                break
            count, _ = AuditEvent._base_manager.filter(pk__in=batch).delete()
            deleted += count
        head.anchor_seq, head.anchor_hash = anchor.chain_link()
        head.purged_at = timezone.now()
        head.save(update_fields=["anchor_seq", "anchor_hash", "purged_at"])
        team = _TeamSnapshot(chain_key, head.team_slug) if chain_key else None
        audit_record(
            event="audit.events.purged",
            principal=Principal.system("audit-retention"),
            team=team,
            target=AuditTarget("audit.chain", str(chain_key), head.team_slug or "platform"),
            after={"deleted": deleted, "anchor_seq": upto, "cutoff": cutoff.isoformat()},
        )
    logger.info("audit purge: chain %s deleted %s events up to seq %s", chain_key, deleted, upto)
    return PurgeResult(chain_key, deleted, upto)


@dataclass(frozen=True)
class _TeamSnapshot:
    """Team identity as the chain knows it: the team row may already be gone."""

    pk: int
    slug: str


def audit_purge_expired(*, now: datetime | None = None) -> list[PurgeResult]:
    """Apply every chain's retention; one transaction per chain."""
    now = now or timezone.now()
    results = []
    for chain_key in AuditChainHead.objects.order_by("chain_key").values_list(
        "chain_key", flat=True
    ):
        cutoff = now - timedelta(days=retention_days_for(chain_key))
        result = audit_chain_purge(chain_key=chain_key, cutoff=cutoff)
        if result.deleted:
            results.append(result)
    return results
