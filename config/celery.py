"""The Celery app `config`: settings from Django (CELERY_*), tasks from every app's tasks.py."""

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Retention is a compliance promise: enforce it daily even if nobody opens the audit pages.
    "purge-audit-events-daily": {
        "task": "apps.audit.tasks.purge_audit_events_task",
        "schedule": crontab(hour=3, minute=17),
    },
    # Events are sealed right after commit by their process; this catches the ones whose
    # process died in between, so no event stays unsealed for longer than this.
    "seal-audit-events": {
        "task": "apps.audit.tasks.seal_audit_events_task",
        "schedule": 30.0,
    },
    # Signed chain-head checkpoints outside the database (apps.audit.anchors).
    "anchor-audit-chains": {
        "task": "apps.audit.tasks.anchor_audit_chains_task",
        "schedule": float(os.environ.get("MANIFOLD_AUDIT_ANCHOR_INTERVAL", "300")),
    },
    # Devices silent past their team's threshold raise an offline alert (apps.devices.tasks).
    "devices-check-offline": {"task": "devices.check_offline", "schedule": 30.0},
}


@app.on_after_configure.connect  # type: ignore[untyped-decorator]  # celery ships no types
def ensure_broker_folders(sender: Celery, source: Any = None, **kwargs: Any) -> None:
    """Create the filesystem transport's folders: kombu fails on a missing one.

    Runs once per process when the configuration is first read, before any publish or consume.
    """
    conf = source if source is not None else sender.conf
    if conf.broker_url != "filesystem://":
        return
    options = conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        folder = options.get(key)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    schedule = conf.beat_schedule_filename
    if schedule:
        Path(schedule).parent.mkdir(parents=True, exist_ok=True)
