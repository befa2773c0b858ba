"""The fleet pages in a real browser: live list, adding a device, screenshots, axe."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import expect

from apps.accounts.principal import Principal
from apps.devices.models import Device, DeviceHeartbeat, DeviceStateChange, DeviceStatus
from apps.devices.services import device_suspend
from tests.apps.devices.test_pages import make_device
from tests.browser.conftest import axe_violations, log_in, shot
from tests.browser.test_devices_live_sidebar import ScriptedStream, debug
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.browser
STATUSES = ("online", "offline", "updating", "error", "suspended", "pending")
WIDTHS = (1440, 390)


def in_thread(work: Callable[[], Any]) -> None:
    """Run a service as a request would: in its own thread, with its own connection."""

    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)


def seed_fleet(acme: Acme) -> list[Device]:
    devices = []
    for index, status in enumerate(STATUSES):
        devices.append(
            make_device(
                acme.team,
                acme.olivia,
                f"Packaging line {index + 1} {status} gateway with a long descriptive name",
                application=acme.line_1 if index % 2 == 0 else None,
                status=status,
                tags=["line-3", "PRD"] if index % 3 == 0 else ["spare"],
            )
        )
    return devices


def test_fleet_list_updates_live_when_another_session_suspends_a_device(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Motor A", status="online")
    page = new_page()
    log_in(page, server, acme_world.vera.email, PASSWORD)
    page.goto(f"{server}/teams/acme/devices/")
    expect(page.locator("[data-live-status]")).to_have_attribute("data-state", "live")
    page.evaluate("window.__sameDocument = true")
    row = page.locator(f'[data-device-row="{device.pk}"]')
    expect(row.locator(".pill-online")).to_be_visible()

    in_thread(
        lambda: device_suspend(principal=Principal.for_user(acme_world.olivia), device=device)
    )

    expect(row.locator(".pill-suspended")).to_have_text("Suspended")
    assert page.evaluate("window.__sameDocument") is True


def test_add_a_device_from_the_empty_fleet_shows_token_and_commands(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    for width in WIDTHS:
        page = new_page(width=width, height=900)
        log_in(page, server, acme_world.eddie.email, PASSWORD)
        page.goto(f"{server}/teams/acme/devices/")
        expect(page.get_by_test_id("fleet-empty")).to_be_visible()
        shot(page, f"devices-empty-{width}")
        assert axe_violations(page) == []
        page.get_by_test_id("fleet-empty").get_by_role("link", name="Add a device").click()
        create = page.get_by_role("button", name="Create token and show commands")
        token_form = page.locator("form").filter(has=create)
        token_form.get_by_label("Name").fill(f"Gateways {width}")
        token_form.get_by_label("Application").select_option("line-1")
        create.click()
        register = page.get_by_test_id("register-command")
        expect(register).to_contain_text("edge-runner register --url ")
        expect(register).to_contain_text("--token mft_")
        expect(page.get_by_test_id("run-command")).to_have_text(
            "edge-runner run --data-dir /var/lib/manifold-edge"
        )
        expect(page.get_by_role("button", name="Copy").first).to_be_visible()
        shot(page, f"devices-add-{width}")
        assert axe_violations(page) == []


def test_fleet_and_device_pages_look_right_and_pass_axe(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    devices = seed_fleet(acme_world)
    device = devices[3]
    now = timezone.now()
    for minute in range(30):
        DeviceHeartbeat.objects.create(
            device=device,
            at=now - dt.timedelta(minutes=30 - minute),
            cpu_percent=20 + (minute * 7) % 50,
            memory_bytes=200_000_000 + minute * 3_000_000,
            disk_free_bytes=8_000_000_000 - minute * 10_000_000,
            uptime_seconds=3600 + minute * 60,
        )
    Device.objects.filter(pk=device.pk).update(
        resources={
            "cpu_percent": 41.0,
            "memory_bytes": 287_000_000,
            "memory_limit_bytes": 1_073_741_824,
            "disk_free_bytes": 7_710_000_000,
            "uptime_seconds": 5400,
        },
        last_errors=[{"node": "modbus-read-1", "message": "Connection refused (10.0.0.7:502)"}],
        nodes={"total": 12, "error": 1},
        hostname="gw-line1-a.plant.local",
    )
    for hours, status in ((3, DeviceStatus.ONLINE), (1, DeviceStatus.ERROR)):
        DeviceStateChange.objects.create(
            device=device, at=now - dt.timedelta(hours=hours), status=status, reason="heartbeat"
        )
    sample = [
        debug(
            1,
            node="a1",
            name="Line 1 temperature",
            topic="line1/temp",
            property="payload",
            format="Object",
            msg='{"celsius": 21.5}',
        ),
        {
            "seq": 2,
            "kind": "status",
            "time": 1_764_000_002,
            "node": "modbus-read-1",
            "status": {"fill": "red", "shape": "ring", "text": "connection refused"},
        },
        {
            "seq": 3,
            "kind": "log",
            "time": 1_764_000_003,
            "level": "error",
            "message": "modbus-read-1: connect ECONNREFUSED 10.0.0.7:502",
        },
    ]
    for width in WIDTHS:
        page = new_page(width=width, height=900)
        stream = ScriptedStream(page)
        log_in(page, server, acme_world.olivia.email, PASSWORD)
        page.goto(f"{server}/teams/acme/devices/")
        for name in STATUSES:
            expect(page.locator(f".pill-{name}").first).to_be_visible()
        shot(page, f"devices-fleet-{width}")
        assert axe_violations(page) == []
        page.goto(f"{server}/teams/acme/devices/{device.pk}/")
        expect(page.locator(".sparkline polyline").first).to_be_attached()
        expect(page.locator("[data-stream-status]")).to_have_attribute("data-state", "live")
        stream.send({"kind": "stream", "epoch": "e1", "items": sample})
        stream.send({"kind": "gap", "missing": 12, "from_seq": 4, "to_seq": 15})
        expect(page.locator(".live-gap")).to_be_visible()
        shot(page, f"devices-device-{width}")
        assert axe_violations(page) == []
