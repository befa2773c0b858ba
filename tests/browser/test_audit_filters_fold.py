"""The audit log's filters fold behind a "Filters" toggle on a phone (390 px), so the events
start near the top; on a wide screen they stay unfolded. No script: a <details> element."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from apps.accounts.principal import Principal
from apps.teams.services import application_create
from tests.browser.conftest import axe_violations, log_in, shot
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.browser
PHONE = (390, 844)


def _busy_team(acme: Acme) -> None:
    for number in range(2, 10):
        application_create(
            principal=Principal.for_user(acme.olivia),
            team=acme.team,
            name=f"Line {number}",
            slug=f"line-{number}",
        )


def _top(page: Any, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return float(box["y"])


def test_on_a_phone_the_filters_fold_and_the_events_start_above_the_fold(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    _busy_team(acme_world)
    page = new_page(*PHONE)
    log_in(page, server, acme_world.olivia.email, PASSWORD)
    page.goto(f"{server}/teams/acme/audit/")

    toggle = page.locator(".filter-card summary")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_text("Filters")
    expect(page.get_by_label("Event", exact=True)).to_be_hidden()
    card = page.locator(".filter-card").bounding_box()
    assert card is not None
    first_event = _top(page, ".audit-event")
    fold = {"filter card": card["height"], "first event": first_event}
    print(f"audit log at 390 px, folded: {fold}")
    assert card["height"] <= 80, fold
    # The first events show on the first screen, under the page header and the toggle.
    assert first_event + 3 * 60 < PHONE[1], fold
    assert axe_violations(page) == []
    shot(page, "phone-audit-filters-folded")

    toggle.click()
    event_filter = page.get_by_label("Event", exact=True)
    expect(event_filter).to_be_visible()
    shot(page, "phone-audit-filters-open")
    assert axe_violations(page) == []
    event_filter.fill("team.application")
    page.get_by_role("button", name="Filter").click()
    results = page.locator("#audit-results")
    expect(results.get_by_text("team.member.added", exact=True)).to_have_count(0)
    expect(results.get_by_text("team.application.created", exact=True).first).to_be_visible()

    # Reloaded with a filter in the address, the folded toggle says filters are active.
    page.reload()
    expect(page.locator(".filter-card summary")).to_have_text("Filters 1 active")


def test_on_a_wide_screen_the_filters_stay_unfolded(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    _busy_team(acme_world)
    page = new_page(1440, 900)
    log_in(page, server, acme_world.olivia.email, PASSWORD)
    page.goto(f"{server}/teams/acme/audit/")
    expect(page.get_by_label("Event", exact=True)).to_be_visible()
    expect(page.get_by_label("Actor", exact=True)).to_be_visible()
    expect(page.locator(".filter-card summary")).to_be_hidden()
    assert axe_violations(page) == []
    shot(page, "desktop-audit-filters")
    page.get_by_label("Event", exact=True).fill("team.application")
    page.get_by_role("button", name="Filter").click()
    results = page.locator("#audit-results")
    expect(results.get_by_text("team.member.added", exact=True)).to_have_count(0)
