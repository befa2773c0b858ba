"""Offline alerts: a device silent longer than its team's threshold raises one; it clears when
the device is heard again (``services.link`` clears at the status change, this sweep is the
backstop). Raising is audited, told to the team's pages and, when the team set one, POSTed to
its webhook (after commit, 5 s timeout, no redirects, http/https only)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Final

from django.db import transaction
from django.utils import timezone

from apps.accounts.principal import Principal
from apps.core.realtime import broadcast_team_event
from apps.devices.models import Device, DeviceAlert, DeviceStatus, FleetSettings
from apps.devices.services.link import alert_clear, announce_state, audit_device

DEFAULT_OFFLINE_AFTER: Final = 120
WEBHOOK_TIMEOUT_SECONDS: Final = 5.0
OFFLINE: Final = "offline"
_LIVE: Final = (DeviceStatus.ONLINE, DeviceStatus.UPDATING, DeviceStatus.ERROR)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    raised: int
    cleared: int


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post_webhook(url: str, payload: dict[str, Any]) -> int | None:
    """POST ``payload`` as JSON; the status, or None when it failed (logged, never raised)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        logger.warning("devices: alert webhook %r is not http(s); not called", url)
        return None
    request = urllib.request.Request(  # noqa: S310  # scheme checked above
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "manifold-alerts/1"},
        method="POST",
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        logger.warning("devices: alert webhook %s answered %s", url, error.code)
        return int(error.code)
    except (OSError, ValueError) as error:
        logger.warning("devices: alert webhook %s failed: %s", url, error)
        return None


def _raise(device: Device, webhook: str, now: dt.datetime, principal: Principal) -> None:
    silent = int((now - device.last_seen).total_seconds()) if device.last_seen else None
    message = f"{device.name} has not been heard from for {silent} s"
    DeviceAlert.objects.create(device=device, kind=OFFLINE, raised_at=now, message=message)
    if device.status != DeviceStatus.OFFLINE:
        device.status = DeviceStatus.OFFLINE
        device.save(update_fields=["status", "updated_at"])
        announce_state(device)
    audit_device("device.alert.raised", principal, device, {"kind": OFFLINE, "message": message})
    payload = {
        "event": "device.alert.raised",
        "kind": OFFLINE,
        "device": {"id": device.pk, "name": device.name},
        "team": device.team.slug,
        "message": message,
        "raised_at": now.isoformat(),
    }
    broadcast_team_event(
        device.team_id,
        "device.alert.raised",
        payload,
        permission="device:read",
        application_id=device.application_id,
    )
    if webhook:
        transaction.on_commit(lambda: post_webhook(webhook, payload))


def devices_check_offline(now: dt.datetime | None = None) -> SweepResult:
    """Raise an alert for each device silent past its team's threshold; clear returned ones."""
    now = now or timezone.now()
    principal = Principal.system("devices.check_offline")
    thresholds = dict(FleetSettings.objects.values_list("team_id", "offline_after_seconds"))
    webhooks = dict(FleetSettings.objects.values_list("team_id", "alert_webhook_url"))
    floor = min([DEFAULT_OFFLINE_AFTER, *thresholds.values()])
    candidates = (
        Device.objects.select_related(
            "team", "application", "target__snapshot", "active_target__snapshot"
        )
        .filter(
            decommissioned_at__isnull=True,
            last_seen__lt=now - dt.timedelta(seconds=floor),
            status__in=[*_LIVE, DeviceStatus.OFFLINE],
        )
        .exclude(alerts__cleared_at__isnull=True, alerts__kind=OFFLINE)
    )
    raised = 0
    for device in candidates:
        limit = thresholds.get(device.team_id, DEFAULT_OFFLINE_AFTER)
        if device.last_seen is None or (now - device.last_seen).total_seconds() <= limit:
            continue
        with transaction.atomic():
            _raise(device, webhooks.get(device.team_id, ""), now, principal)
        raised += 1
    cleared = 0
    returned = DeviceAlert.objects.select_related("device__team", "device__application").filter(
        cleared_at__isnull=True, kind=OFFLINE, device__status__in=_LIVE
    )
    for alert in returned:
        with transaction.atomic():
            alert_clear(alert, principal)
        cleared += 1
    return SweepResult(raised=raised, cleared=cleared)
