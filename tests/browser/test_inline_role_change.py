"""The members page changes roles in place in real Chromium: the row's select posts with htmx
(under the Content-Security-Policy), the row shows the new role or the refusal in words, and the
page itself is never reloaded. axe-core stays clean; screenshots at 1440 and 390 px."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from apps.teams.models import Membership
from tests.browser.conftest import BOTH_WIDTHS, axe_violations, log_in, shot
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.browser


@BOTH_WIDTHS
def test_owner_changes_roles_inline_and_sees_refusals_in_the_row(
    device: str,
    width: int,
    height: int,
    acme_world: Acme,
    server: str,
    new_page: Callable[..., Any],
) -> None:
    eddie = Membership.objects.get(team=acme_world.team, user=acme_world.eddie)
    olivia = Membership.objects.get(team=acme_world.team, user=acme_world.olivia)
    page = new_page(width, height)
    log_in(page, server, acme_world.olivia.email, PASSWORD)
    page.goto(f"{server}/teams/acme/members/")
    assert axe_violations(page) == []
    page.evaluate("window.__sameDocument = true")

    eddie_row = page.locator(f"#member-{eddie.pk}")
    eddie_row.get_by_label("Role of eddie@acme.test").select_option("viewer")
    expect(eddie_row.get_by_role("status")).to_have_text("Saved.")
    expect(eddie_row.get_by_label("Role of eddie@acme.test")).to_have_value("viewer")
    eddie.refresh_from_db()
    assert eddie.role == "viewer"

    olivia_row = page.locator(f"#member-{olivia.pk}")
    olivia_row.get_by_label("Role of olivia@acme.test").select_option("dashboard")
    alert = olivia_row.get_by_role("alert")
    expect(alert).to_contain_text("A team must keep at least one owner")
    # The select shows the role the member really has, and says it is in error.
    select = olivia_row.get_by_label("Role of olivia@acme.test")
    expect(select).to_have_value("owner")
    expect(select).to_have_attribute("aria-invalid", "true")
    olivia.refresh_from_db()
    assert olivia.role == "owner"

    assert page.evaluate("window.__sameDocument") is True  # rows swapped, page not reloaded
    assert axe_violations(page) == []
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1
    shot(page, f"{device}-members-inline-role")
