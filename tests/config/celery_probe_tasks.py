"""Tasks only the worker round-trip test loads.

The worker loads them with ``celery worker --include tests.config.celery_probe_tasks``.
"""

from __future__ import annotations

import time
from pathlib import Path

from celery import shared_task

from apps.core.realtime import broadcast_team_event


@shared_task(name="tests.probe_touch_task")
def probe_touch_task(path: str, sent_at: float) -> None:
    """Prove the task ran in the worker: write the delivery delay to ``path``."""
    Path(path).write_text(f"{time.time() - sent_at:.6f}")


@shared_task(name="tests.probe_broadcast_task")
def probe_broadcast_task(team_id: int, sent_at: float) -> None:
    """What a real task does: announce through broadcast_team_event (sent on commit)."""
    broadcast_team_event(team_id, "probe.ping", {"sent_at": sent_at})
