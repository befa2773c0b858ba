"""Celery entry points of the audit trail (thin: the work lives in apps.audit.retention)."""

from __future__ import annotations

from celery import shared_task

from apps.audit.retention import audit_purge_expired


@shared_task(name="apps.audit.tasks.purge_audit_events_task")  # type: ignore[untyped-decorator]  # celery ships no type hints
def purge_audit_events_task() -> dict[str, int]:
    """Beat task: delete events past each team's retention. Returns deleted counts by chain."""
    return {str(result.chain_key): result.deleted for result in audit_purge_expired()}
