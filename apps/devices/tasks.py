"""Celery entry points of the devices app (thin: the work is in services)."""

from __future__ import annotations

from celery import shared_task

from apps.devices.services.alerts import devices_check_offline


@shared_task(name="devices.check_offline")  # type: ignore[untyped-decorator]  # celery ships no type hints
def check_offline_task() -> dict[str, int]:
    """Beat task (every 30 s): offline alerts raised and cleared."""
    result = devices_check_offline()
    return {"raised": result.raised, "cleared": result.cleared}
