"""The device page's developer mode with a real agent behind the real link: enter, the live
panel (tabs -> nodes, inject, each node's live status), the JSON editor (inline validator
errors, deploy), leave keeping the changes as a snapshot; axe-clean at 1440 and 390 px,
screenshots in /tmp/shots."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from apps.devices.models import Device
from apps.snapshots.models import Snapshot
from tests.browser.conftest import log_in, page_is_clean, page_tolerating_400
from tests.conftest import PASSWORD, Acme
from tests.e2e.test_device_developer_mode import dev_line
from tests.e2e.test_device_lifecycle import (
    Agent,
    deploy,
    line,
    make_snapshot,
    provision,
    settled,
    until,
)

pytestmark = pytest.mark.browser


class Served:
    def __init__(self, base: str) -> None:
        self.base = base


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_a_member_develops_on_the_device_page(
    acme_world: Acme, server: str, chromium: Any, width: int, height: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="devmode-") as scratch:
        agent = Agent(Path(scratch) / "runner")
        try:
            device_id = provision(acme_world, Served(server), agent, "press-1")  # type: ignore[arg-type]  # has .base
            v1 = make_snapshot(acme_world, "v1", line("Press line", every=5))
            target = deploy(acme_world, device_id, v1)
            assert until(lambda: settled(target), 60, agent.output()).outcome == "applied"
            develop(acme_world, server, chromium, device_id, width, height)
        finally:
            agent.stop()


def develop(
    acme: Acme, server: str, chromium: Any, device_id: int, width: int, height: int
) -> None:
    size = "desktop" if width > 500 else "phone"
    # Refused flows answer 400 (which Chromium logs as a console error): a page that tolerates
    # exactly that and nothing else.
    context, page, problems = page_tolerating_400(chromium, width, height)
    context.set_default_timeout(15_000)
    try:
        steps(acme, server, page, device_id, size)
    finally:
        context.close()
    assert problems == []


def steps(acme: Acme, server: str, page: Any, device_id: int, size: str) -> None:
    page.on("console", lambda m: print("CONSOLE", m.type, m.text[:300], page.url))
    log_in(page, server, acme.eddie.email, PASSWORD)
    page.goto(f"{server}/teams/acme/devices/{device_id}/")
    page.get_by_role("button", name="Enter developer mode").click()
    expect(page.get_by_test_id("developer-banner")).to_contain_text("target deploys are paused")
    panel = page.locator("#developer-panel")
    expect(panel.get_by_test_id("engine-state")).to_have_text("start")
    expect(panel.get_by_text("Press line", exact=True)).to_be_visible()
    expect(panel.get_by_role("button", name="Inject")).to_have_count(1)
    page_is_clean(page, f"devmode-{size}-entered")

    editor = page.get_by_label("Flows (JSON)")
    editor.fill("[{not json")
    page.get_by_role("button", name="Deploy to the device").click()
    expect(page.locator("#developer-panel")).to_contain_text("Not valid JSON")
    editor = page.get_by_label("Flows (JSON)")
    editor.fill(json.dumps([{"id": "a", "type": "tab"}, {"id": "a", "type": "tab"}]))
    page.get_by_role("button", name="Deploy to the device").click()
    expect(page.locator("#developer-panel")).to_contain_text("duplicate node id")
    page_is_clean(page, f"devmode-{size}-invalid")

    page.get_by_label("Flows (JSON)").fill(json.dumps(dev_line("Dev line")))
    page.get_by_role("button", name="Deploy to the device").click()
    expect(page.get_by_text("Deployed to the device.")).to_be_visible()
    expect(page.locator("#developer-panel").get_by_text("Dev line", exact=True)).to_be_visible()
    # Node status, live: the debug node's start status (a grey ring, restated to this page's
    # new watcher, painted when the panel arrives), then the pressed message, kept across a
    # reload of the panel.
    status = page.locator('#developer-panel [data-dev-node-status="dev-line-debug"]')
    expect(status).to_have_attribute("data-fill", "grey")
    expect(status.locator(".node-dot")).to_have_class("node-dot node-dot-grey node-dot-ring")
    expect(page.locator('#developer-panel [data-dev-node-status="dev-line-inject"]')).to_have_text(
        "—"
    )
    page.get_by_role("button", name="Inject Dev line button").click()
    expect(page.locator("#developer-notice")).to_contain_text("Injected dev-line-inject")
    expect(page.locator("[data-stream-list]")).to_contain_text("pressed on Dev line")
    expect(status).to_have_text("pressed on Dev line (grey)")
    expect(status.locator(".node-dot")).to_have_class("node-dot node-dot-grey")
    page.locator("#developer-panel").get_by_role("button", name="Refresh").click()
    expect(page.get_by_test_id("engine-state")).to_have_text("start")
    expect(status).to_have_text("pressed on Dev line (grey)")
    page_is_clean(page, f"devmode-{size}-deployed")

    page.get_by_label("Snapshot name").fill(f"kept-{size}")
    page.get_by_role("button", name="Leave: keep as snapshot").click()
    expect(page.get_by_text("kept as a new snapshot")).to_be_visible()
    expect(page.get_by_test_id("developer-banner")).to_have_count(0)
    kept = Snapshot.objects.get(name=f"kept-{size}")
    assert [n["label"] for n in kept.flows if n["type"] == "tab"] == ["Dev line"]
    target = Device.objects.get(pk=device_id).target
    assert target is not None
    assert target.snapshot_id == kept.pk
