"""Device groups, registration codes, tokens and logs in a real browser: a walk through groups
(create one with env vars, add a device, see the effective env on the device page), the pages
at 1440 and 390 px with axe-core, the device page's Logs card fed by the live stream, and the
development instance's log panel polling a real process's output."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import expect

from apps.accounts.principal import Principal
from apps.devices.models import Device, DeviceGroup, HostedInstance
from apps.devices.services import (
    device_group_create,
    device_update,
    provisioning_token_create,
)
from apps.devices.services.hosting import hosted_instance_create
from tests.apps.devices.test_hosted_logs import run_instance
from tests.apps.devices.test_pages import make_device
from tests.browser.conftest import axe_violations, log_in, page_is_clean, shot
from tests.browser.test_devices_live_sidebar import ScriptedStream
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.browser
WIDTHS = (1440, 390)


def clean(page: Any, name: str) -> None:
    """One heading, no axe finding, no sideways scroll, and a screenshot to look at."""
    page_is_clean(page, name)


def test_groups_walk_create_with_env_add_a_device_see_effective_env(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    device = make_device(
        acme_world.team,
        acme_world.olivia,
        "Packaging line 1 gateway",
        application=acme_world.line_1,
    )
    device_update(
        principal=Principal.for_user(acme_world.olivia), device=device, env={"LINE": "1-own"}
    )
    page = new_page(width=1440, height=900)
    log_in(page, server, acme_world.eddie.email, PASSWORD)
    page.goto(f"{server}/teams/acme/devices/")
    page.get_by_role("link", name="Device groups").click()
    expect(page.get_by_test_id("groups-empty")).to_be_visible()
    clean(page, "devices-groups-empty-1440")
    page.get_by_test_id("groups-empty").get_by_role("link", name="New group").click()

    page.get_by_label("Name", exact=True).fill("Line 3 presses")
    page.get_by_label("Description").fill("Presses on line 3, hall B")
    page.get_by_label("Name of variable 1").fill("BROKER_URL")
    page.get_by_label("Value of variable 1").fill("mqtt://line3.plant.local:1883")
    page.get_by_role("button", name="Add a variable").click()
    page.get_by_label("Name of variable 2").fill("LINE")
    page.get_by_label("Value of variable 2").fill("3")
    # A third row, removed again: the editor keeps its rows numbered.
    page.get_by_role("button", name="Add a variable").click()
    page.get_by_label("Name of variable 3").fill("UNWANTED")
    clean(page, "devices-group-form-1440")
    page.get_by_role("button", name="Remove variable 2").click()
    expect(page.get_by_label("Name of variable 2")).to_have_value("UNWANTED")
    page.get_by_role("button", name="Remove variable 2").click()
    page.get_by_role("button", name="Add a variable").click()
    page.get_by_label("Name of variable 2").fill("LINE")
    page.get_by_label("Value of variable 2").fill("3")
    page.get_by_role("button", name="Create group").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Line 3 presses")
    expect(page.locator(".messages")).to_contain_text("Device group “Line 3 presses” created.")
    group = DeviceGroup.objects.get()
    assert group.env == {"BROKER_URL": "mqtt://line3.plant.local:1883", "LINE": "3"}
    page.get_by_label("Packaging line 1 gateway").check()
    page.get_by_role("button", name="Add to group").click()
    expect(page.locator(f'[data-member-row="{device.pk}"]')).to_be_visible()
    clean(page, "devices-group-1440")

    page.locator(f'[data-member-row="{device.pk}"]').get_by_role("link").click()
    env = page.get_by_test_id("effective-env")
    broker = env.locator('[data-env-name="BROKER_URL"]')
    expect(broker).to_contain_text("mqtt://line3.plant.local:1883")
    expect(broker.locator("[data-env-source]")).to_have_text("Line 3 presses")
    line = env.locator('[data-env-name="LINE"]')
    expect(line).to_contain_text("1-own")
    expect(line.locator("[data-env-source]")).to_contain_text("device")
    expect(line.locator("[data-env-source]")).to_contain_text("overrides Line 3 presses")
    env.scroll_into_view_if_needed()
    assert axe_violations(page) == []
    shot(page, "devices-device-env-1440")

    page.goto(f"{server}/teams/acme/devices/groups/")
    expect(page.locator(f'[data-group-row="{group.pk}"]')).to_contain_text("1")
    clean(page, "devices-groups-1440")
    page.goto(f"{server}/teams/acme/devices/groups/{group.pk}/delete/")
    clean(page, "devices-group-delete-1440")


@pytest.fixture
def groups_world(acme_world: Acme) -> tuple[DeviceGroup, Device]:
    olivia = Principal.for_user(acme_world.olivia)
    group = device_group_create(
        principal=olivia,
        team=acme_world.team,
        name="Hall B presses with a rather long descriptive group name",
        description="Every press in hall B. Their broker and line number come from here; "
        "a device that sets its own value keeps it.",
        env={
            "BROKER_URL": "mqtt://hall-b.plant.local:1883",
            "LINE": "3",
            "HISTORIAN_URL": "https://historian.plant.local/api/v2/ingest?site=hall-b&x=1",
        },
    )
    device_group_create(principal=olivia, team=acme_world.team, name="Spare parts")
    device = None
    for index in range(3):
        device = make_device(
            acme_world.team,
            acme_world.olivia,
            f"Press {index + 1} gateway in hall B with a long name",
            application=acme_world.line_1 if index else None,
            status=("online", "offline", "error")[index],
        )
        device_update(principal=olivia, device=device, groups=[group])
    assert device is not None
    device_update(principal=olivia, device=device, env={"LINE": "3b"})
    make_device(acme_world.team, acme_world.olivia, "Dryer 1")
    return group, device


@pytest.mark.parametrize("width", WIDTHS)
def test_group_pages_at_both_widths(
    acme_world: Acme,
    server: str,
    new_page: Callable[..., Any],
    groups_world: tuple[DeviceGroup, Device],
    width: int,
) -> None:
    group, device = groups_world
    page = new_page(width=width, height=900)
    log_in(page, server, acme_world.olivia.email, PASSWORD)
    page.goto(f"{server}/teams/acme/devices/groups/")
    clean(page, f"devices-groups-{width}")
    page.goto(f"{server}/teams/acme/devices/groups/{group.pk}/")
    expect(page.get_by_role("heading", name="Add devices")).to_be_visible()
    clean(page, f"devices-group-{width}")
    page.goto(f"{server}/teams/acme/devices/groups/{group.pk}/edit/")
    clean(page, f"devices-group-form-{width}")
    page.goto(f"{server}/teams/acme/devices/groups/{group.pk}/delete/")
    clean(page, f"devices-group-delete-{width}")
    page.goto(f"{server}/teams/acme/devices/{device.pk}/")
    page.get_by_test_id("effective-env").scroll_into_view_if_needed()
    assert axe_violations(page) == []
    shot(page, f"devices-device-env-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_registration_code_and_token_pages(
    acme_world: Acme, server: str, new_page: Callable[..., Any], width: int
) -> None:
    olivia = Principal.for_user(acme_world.olivia)
    device_group_create(principal=olivia, team=acme_world.team, name="Presses")
    provisioning_token_create(
        principal=olivia,
        team=acme_world.team,
        name="Line 1 gateways for the whole packaging hall",
        application=acme_world.line_1,
        max_uses=20,
        expires_at=timezone.now() + dt.timedelta(days=7),
    )
    provisioning_token_create(principal=olivia, team=acme_world.team, name="Spare")
    page = new_page(width=width, height=900)
    log_in(page, server, acme_world.eddie.email, PASSWORD)
    page.goto(f"{server}/teams/acme/devices/add/")
    clean(page, f"devices-add-both-{width}")
    page.get_by_label("Device name").fill(f"Oven {width}")
    page.get_by_label("Presses").check()
    page.get_by_role("button", name="Create device and code").click()
    code = page.get_by_test_id("registration-code")
    expect(code).to_have_text(re.compile(r"^MFR-"))
    first_code = code.inner_text()
    expect(page.get_by_test_id("code-register-command")).to_contain_text(f"--token {first_code} ")
    clean(page, f"devices-add-code-{width}")

    page.get_by_role("link", name="its page").click()
    waiting = page.get_by_test_id("waiting-for-registration")
    expect(waiting).to_contain_text("Waiting for registration")
    expect(waiting).to_contain_text("The code expires")
    clean(page, f"devices-device-waiting-{width}")
    page.get_by_role("button", name="Issue a new code").click()
    new_code = page.get_by_test_id("registration-code").inner_text()
    assert new_code.startswith("MFR-")
    assert new_code != first_code
    clean(page, f"devices-device-new-code-{width}")

    page.goto(f"{server}/teams/acme/devices/tokens/")
    expect(page.locator("[data-token-status]").first).to_be_visible()
    clean(page, f"devices-tokens-{width}")


def test_device_logs_card_shows_the_streams_log_lines(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Motor A")
    for width in WIDTHS:
        page = new_page(width=width, height=900)
        stream = ScriptedStream(page)
        log_in(page, server, acme_world.vera.email, PASSWORD)
        page.goto(f"{server}/teams/acme/devices/{device.pk}/")
        card = page.locator("[data-device-logs]")
        expect(card.locator("[data-log-empty]")).to_be_visible()
        expect(page.locator("[data-stream-status]")).to_have_attribute("data-state", "live")
        items = [
            {"seq": 1, "kind": "debug", "time": 1_764_000_001, "node": "a1", "msg": "21.5"},
            {
                "seq": 2,
                "kind": "log",
                "time": 1_764_000_002,
                "level": "info",
                "message": "Started flows",
            },
            {
                "seq": 3,
                "kind": "log",
                "time": 1_764_000_003,
                "level": "error",
                "node": "modbus-read-1",
                "message": "connect ECONNREFUSED 10.0.0.7:502 " + "(retrying) " * 12,
            },
        ]
        stream.send({"kind": "stream", "epoch": "e1", "items": items})
        stream.send({"kind": "gap", "missing": 7, "from_seq": 4, "to_seq": 10})
        lines = card.locator("[data-log-list] > li")
        expect(lines).to_have_count(3)
        expect(lines.nth(0)).to_contain_text("Started flows")
        expect(lines.nth(1)).to_contain_text("ECONNREFUSED")
        expect(lines.nth(2)).to_have_text("7 messages not shown")
        expect(card.locator("[data-log-empty]")).to_be_hidden()
        # The sidebar's pause does not hold the card back.
        page.get_by_role("button", name="Pause").click()
        stream.send(
            {
                "kind": "stream",
                "epoch": "e1",
                "items": [{"seq": 11, "kind": "log", "time": 1_764_000_011, "message": "later"}],
            }
        )
        expect(lines).to_have_count(4)
        card.scroll_into_view_if_needed()
        assert axe_violations(page) == []
        shot(page, f"devices-device-logs-{width}")


def test_development_instance_log_panel_follows_a_real_process(
    acme_world: Acme, server: str, new_page: Callable[..., Any], tmp_path: Path
) -> None:
    root = tmp_path / "hosted"
    with override_settings(HOSTED_ROOT=root, HOSTED_PORTS="31830-31839"):
        hosted_instance_create(
            principal=Principal.for_user(acme_world.olivia), application=acme_world.line_1
        )
        instance = HostedInstance.objects.get()
        for width in WIDTHS:
            page = new_page(width=width, height=900)
            log_in(page, server, acme_world.vera.email, PASSWORD)
            page.goto(f"{server}/teams/acme/applications/line-1/")
            panel = page.locator("#hosted-logs")
            expect(panel).to_contain_text("No output yet")
            if width == WIDTHS[0]:
                shot(page, "devices-dev-instance-logs-empty-1440")
            driver = run_instance(root, instance)
            try:
                expect(panel.locator("pre.log-tail")).to_contain_text("line 1499", timeout=8000)
                at_bottom = panel.locator("pre.log-tail").evaluate(
                    "box => box.scrollHeight - box.scrollTop - box.clientHeight < 30"
                )
                assert at_bottom, "the newest line is not in view"
                assert axe_violations(page) == []
                shot(page, f"devices-dev-instance-logs-{width}")
            finally:
                driver.stop(str(instance.device_id))
            (root / str(instance.device_id) / "runner.log").unlink()
