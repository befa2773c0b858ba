"""Tasks only the worker round-trip test loads.

The worker loads them with ``celery worker --include tests.config.celery_probe_tasks``.
"""

from __future__ import annotations

import time
from pathlib import Path

from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer


@shared_task(name="tests.probe_touch_task")
def probe_touch_task(path: str, sent_at: float) -> None:
    """Prove the task ran in the worker: write the delivery delay to ``path``."""
    Path(path).write_text(f"{time.time() - sent_at:.6f}")


@shared_task(name="tests.probe_broadcast_task")
def probe_broadcast_task(group: str, sent_at: float) -> None:
    """Group-send from the worker process through the configured channel layer."""
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(group, {"type": "probe", "sent_at": sent_at})
