"""The snapshot pages in real Chromium at desktop and phone widths: the Snapshots tab, the
new-snapshot form (a file upload, then refused flows with their problems by node) and one
snapshot. No script errors, nothing overflowing sideways, accessible; screenshots in
/tmp/shots/."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.accounts.principal import Principal
from apps.snapshots.models import Snapshot
from apps.snapshots.services import snapshot_create
from tests.apps.snapshots.conftest import CANARY, invalid_flows, valid_flows
from tests.browser.conftest import log_in, page_tolerating_400, shot
from tests.browser.test_page_tour import WIDTHS, _accessible, _no_sideways_scroll
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.browser
PAGES = "/teams/acme/applications/line-1/snapshots/"


@pytest.mark.parametrize("device", list(WIDTHS))
def test_snapshot_pages(
    device: str,
    acme_world: Acme,
    server: str,
    new_page: Callable[..., Any],
    chromium: Any,
    tmp_path: Path,
) -> None:
    snapshot_create(
        principal=Principal.for_user(acme_world.olivia),
        application=acme_world.line_1,
        name="v1 with a rather long name for the packaging line speed change",
        flows=valid_flows(),
        env={"LINE": "3", "PLC_HOST": "192.168.10.20"},
        description="First snapshot.",
    )
    page = new_page(*WIDTHS[device])
    log_in(page, server, acme_world.eddie.email, PASSWORD)

    def check(name: str) -> None:
        _accessible(page)
        _no_sideways_scroll(page)
        shot(page, f"{device}-{name}")

    page.goto(server + PAGES)
    check("snapshots")
    page.get_by_role("link", name="New snapshot").first.click()
    page.wait_for_url("**/snapshots/new/")
    check("snapshot-new")

    # Refused flows answer 400 (which Chromium logs as a console error): in a page of its own
    # that tolerates exactly that and nothing else.
    width, height = WIDTHS[device]
    context, page, problems = page_tolerating_400(chromium, width, height)
    log_in(page, server, acme_world.eddie.email, PASSWORD)
    page.goto(server + PAGES + "new/")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(invalid_flows()))
    page.get_by_label("Name").fill("broken")
    page.get_by_label("flows.json file").set_input_files(str(bad))
    page.get_by_role("button", name="Create snapshot").click()
    page.get_by_text("port must be 1..65535").wait_for()
    check("snapshot-new-problems")

    good = tmp_path / "flows.json"
    good.write_text(json.dumps(valid_flows()))
    page.get_by_label("Name").fill("v2 from a file")
    page.get_by_label("flows.json file").set_input_files(str(good))
    page.get_by_role("button", name="Create snapshot").click()
    page.wait_for_url("**/snapshots/*/")
    assert Snapshot.objects.filter(name="v2 from a file").exists()
    page.get_by_text("password, user").wait_for()
    assert CANARY not in page.content()
    check("snapshot-detail")
    context.close()
    assert problems == []
