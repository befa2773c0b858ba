"""Offline alerts: raised past the team's threshold (audit, event, webhook), cleared on return."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.utils import timezone

from apps.devices.models import Device, DeviceAlert, DeviceStatus, FleetSettings
from apps.devices.services.alerts import devices_check_offline, post_webhook
from apps.devices.services.link import LinkSession, link_hello, link_hello_record
from apps.devices.tasks import check_offline_task
from config.celery import app as celery_app
from tests.apps.devices.linkworld import Registered, register
from tests.conftest import Acme

pytestmark = pytest.mark.django_db(transaction=True)


class Hook:
    """A loopback webhook receiver; ``redirect_to`` makes it answer 302 instead."""

    def __init__(self, redirect_to: str = "") -> None:
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the stdlib's name
                length = int(self.headers.get("Content-Length", "0"))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(302 if redirect_to else 204)
                if redirect_to:
                    self.send_header("Location", redirect_to)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.stop()


def silent_for(device: Registered, seconds: float, status: str = DeviceStatus.ONLINE) -> None:
    Device.objects.filter(pk=device.device.pk).update(
        status=status, last_seen=timezone.now() - dt.timedelta(seconds=seconds)
    )


def test_a_silent_device_raises_one_alert_with_audit_and_webhook(
    acme_world: Acme, hook: Hook, audit_log: Callable[[Any], list[str]]
) -> None:
    FleetSettings.objects.create(
        team=acme_world.team, offline_after_seconds=60, alert_webhook_url=hook.url
    )
    quiet, fresh = register(acme_world.line_1, "quiet"), register(acme_world.line_1, "fresh")
    silent_for(quiet, 61)
    silent_for(fresh, 30)
    assert devices_check_offline().raised == 1
    assert Device.objects.get(pk=quiet.device.pk).status == DeviceStatus.OFFLINE
    assert Device.objects.get(pk=fresh.device.pk).status == DeviceStatus.ONLINE
    alert = DeviceAlert.objects.get()
    assert alert.device_id == quiet.device.pk
    assert alert.cleared_at is None
    assert "device.alert.raised" in audit_log(acme_world.team)
    assert [body["device"]["id"] for body in hook.bodies] == [quiet.device.pk]
    assert hook.bodies[0]["event"] == "device.alert.raised"
    # Still silent: no second alert, no second call.
    assert devices_check_offline().raised == 0
    assert DeviceAlert.objects.count() == 1
    assert len(hook.bodies) == 1


def test_the_default_threshold_applies_without_fleet_settings(acme_world: Acme) -> None:
    device = register(acme_world.line_1, "quiet")
    silent_for(device, 119)
    assert devices_check_offline().raised == 0
    silent_for(device, 121)
    assert devices_check_offline().raised == 1


def test_a_device_that_returns_clears_its_alert(
    acme_world: Acme, audit_log: Callable[[Any], list[str]]
) -> None:
    device = register(acme_world.line_1, "quiet")
    silent_for(device, 500)
    devices_check_offline()
    row = Device.objects.get(pk=device.device.pk)
    session = LinkSession(row.pk, row.team_id, row.name, row.credential_hash or "", False)
    hello = {"type": "hello", "protocol": 1, "agent_version": "0.1.0"}
    _, loaded = link_hello(session, hello)
    assert loaded is not None
    link_hello_record(loaded, hello, "specific.test!link")
    assert DeviceAlert.objects.get().cleared_at is not None
    assert audit_log(acme_world.team)[-1] == "device.alert.cleared"


def test_the_sweep_clears_alerts_of_devices_back_online(acme_world: Acme) -> None:
    device = register(acme_world.line_1, "quiet")
    silent_for(device, 500)
    devices_check_offline()
    silent_for(device, 0)  # heard again through another path
    assert devices_check_offline().cleared == 1
    assert DeviceAlert.objects.get().cleared_at is not None


def test_decommissioned_and_never_seen_devices_raise_nothing(acme_world: Acme) -> None:
    gone, pending = register(acme_world.line_1, "gone"), register(acme_world.line_1, "pending")
    silent_for(gone, 500)
    Device.objects.filter(pk=gone.device.pk).update(decommissioned_at=timezone.now())
    Device.objects.filter(pk=pending.device.pk).update(last_seen=None)
    assert devices_check_offline().raised == 0


def test_the_webhook_does_not_follow_redirects_nor_other_schemes(hook: Hook) -> None:
    bouncer = Hook(redirect_to=hook.url)
    try:
        assert post_webhook(bouncer.url, {"event": "x"}) == 302
        assert len(bouncer.bodies) == 1
        assert hook.bodies == []
        assert post_webhook("file:///etc/passwd", {"event": "x"}) is None
        assert post_webhook("ftp://127.0.0.1/x", {"event": "x"}) is None
    finally:
        bouncer.stop()


def test_the_beat_task_runs_the_sweep_every_30_seconds(acme_world: Acme) -> None:
    device = register(acme_world.line_1, "quiet")
    silent_for(device, 500)
    assert check_offline_task.delay().get() == {"raised": 1, "cleared": 0}
    entry = next(
        e for e in celery_app.conf.beat_schedule.values() if e["task"] == "devices.check_offline"
    )
    assert entry["schedule"] == 30.0
