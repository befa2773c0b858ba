"""Celery entry points of the audit trail (thin: the work lives in retention and sealing)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.audit.anchors import audit_anchor_write
from apps.audit.retention import audit_purge_expired
from apps.audit.sealing import audit_seal_pending
from apps.core.audit_context import audit_context


@shared_task(name="apps.audit.tasks.purge_audit_events_task", bind=True)  # type: ignore[untyped-decorator]  # celery ships no type hints
def purge_audit_events_task(self: Any) -> dict[str, int]:
    """Beat task: delete events past each team's retention. Returns deleted counts by chain."""
    # No request here: the task's own id ties its audit rows to the worker's log lines.
    with audit_context(request_id=str(self.request.id or "")):
        return {str(result.chain_key): result.deleted for result in audit_purge_expired()}


@shared_task(name="apps.audit.tasks.seal_audit_events_task")  # type: ignore[untyped-decorator]  # celery ships no type hints
def seal_audit_events_task() -> dict[str, int]:
    """Beat backstop: seal events whose process died between commit and seal. Counts by chain."""
    return {str(result.chain_key): result.sealed for result in audit_seal_pending()}


@shared_task(name="apps.audit.tasks.anchor_audit_chains_task")  # type: ignore[untyped-decorator]  # celery ships no type hints
def anchor_audit_chains_task() -> int:
    """Beat task: checkpoint every moved chain head outside the database. Returns how many."""
    return len(audit_anchor_write())
