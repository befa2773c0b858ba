"""Live updates: a team event on the websocket makes open pages re-read their data in place."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections, transaction
from playwright.sync_api import expect

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.core.realtime import broadcast_team_event
from apps.teams.models import Membership
from apps.teams.services import application_create, member_role_change
from tests.browser.conftest import BOTH_WIDTHS, axe_violations, log_in, shot
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.browser


def _write_and_announce(acme: Acme, name: str, slug: str) -> None:
    # What a service does: write, audit, and announce on commit. Run in its own thread, as a
    # request or a worker would, not in the thread that drives the browser.
    def work() -> None:
        try:
            with transaction.atomic():
                application = application_create(
                    principal=Principal.for_user(acme.olivia), team=acme.team, name=name, slug=slug
                )
                broadcast_team_event(
                    acme.team.pk, "team.application.created", {"id": application.pk}
                )
        finally:
            # This thread's own connection; left open it would block dropping the test database.
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=10)


def test_audit_log_and_dashboard_show_new_events_without_reload(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    audit = new_page()
    log_in(audit, server, acme_world.olivia.email, PASSWORD)
    audit.goto(f"{server}/teams/acme/audit/?event=team.application")
    expect(audit.locator("[data-live-status]")).to_have_attribute("data-state", "live")
    dashboard = audit.context.new_page()
    dashboard.goto(f"{server}/teams/acme/")
    expect(dashboard.locator("[data-live-status]")).to_have_attribute("data-state", "live")
    audit.evaluate("window.__sameDocument = true")

    _write_and_announce(acme_world, "Packaging OEE", "packaging-oee")

    results = audit.locator("#audit-results")
    expect(results.get_by_text("created the application Packaging OEE")).to_be_visible()
    # The filter stayed applied and the page was not reloaded.
    expect(results.get_by_text("team.member.added", exact=True)).to_have_count(0)
    assert audit.evaluate("window.__sameDocument") is True
    expect(dashboard.locator("#recent-events").get_by_text("Packaging OEE")).to_be_visible()


def test_without_websockets_the_page_hides_the_indicator_and_still_filters(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.add_init_script("delete window.WebSocket")
    log_in(page, server, acme_world.olivia.email, PASSWORD)
    page.goto(f"{server}/teams/acme/audit/")
    expect(page.locator("[data-live-status]")).to_be_hidden()
    page.get_by_label("Event", exact=True).fill("team.application")
    page.get_by_role("button", name="Filter").click()
    results = page.locator("#audit-results")
    expect(results.get_by_text("team.member.added", exact=True)).to_have_count(0)
    expect(results.get_by_text("team.application.created", exact=True)).to_be_visible()


def test_a_refused_stream_says_live_updates_are_off_and_does_not_retry(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    attempts: list[str] = []

    def refuse(socket: Any) -> None:
        attempts.append(socket.url)
        socket.close(code=4403, reason="forbidden")

    page.route_web_socket("**/ws/teams/**", refuse)
    log_in(page, server, acme_world.olivia.email, PASSWORD)
    # One team: login lands on its dashboard, which is refused too; count the audit page's only.
    expect(page.locator("[data-live-status]")).to_have_attribute("data-state", "offline")
    attempts.clear()
    page.goto(f"{server}/teams/acme/audit/")
    status = page.locator("[data-live-status]")
    expect(status).to_have_attribute("data-state", "offline")
    expect(status).to_contain_text("Live updates off")
    page.wait_for_timeout(2500)
    assert len(attempts) == 1


REFUSAL_CODE = """(slug) => new Promise((resolve) => {
  const socket = new WebSocket(`ws://${location.host}/ws/teams/${slug}/events/`);
  socket.addEventListener("close", (event) => resolve(event.code));
})"""


def test_the_browser_sees_the_servers_refusal_codes(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    # A handshake answered with HTTP 403 reaches a page as 1006 ("lost"), which the live script
    # must retry; the real server completes the handshake so the page can tell a refusal.
    page = new_page()
    log_in(page, server, acme_world.olivia.email, PASSWORD)
    page.goto(f"{server}/teams/acme/")
    assert page.evaluate(REFUSAL_CODE, "no-such-team") == 4404
    stranger = new_page()
    stranger.goto(f"{server}/accounts/login/")
    assert stranger.evaluate(REFUSAL_CODE, "acme") == 4403


def test_live_refresh_updates_counters_and_keeps_opened_details_open(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    audit = new_page()
    log_in(audit, server, acme_world.olivia.email, PASSWORD)
    audit.goto(f"{server}/teams/acme/audit/")
    expect(audit.locator("[data-live-status]")).to_have_attribute("data-state", "live")
    opened = audit.locator("details.audit-details").first
    opened_id = opened.get_attribute("id")
    opened.locator("summary").click()
    dashboard = audit.context.new_page()
    dashboard.goto(f"{server}/teams/acme/")
    expect(dashboard.locator("[data-live-status]")).to_have_attribute("data-state", "live")
    applications = dashboard.locator(".stats .card").first.locator(".stat")
    expect(applications).to_have_text("1")

    _write_and_announce(acme_world, "Press 4", "press-4")

    results = audit.locator("#audit-results")
    expect(results.get_by_text("created the application Press 4")).to_be_visible()
    expect(audit.locator(f"#{opened_id}")).to_have_attribute("open", "")
    # The other tab's counters and list, not only its activity feed.
    expect(applications).to_have_text("2")
    expect(dashboard.get_by_role("link", name="Press 4")).to_be_visible()


def _change_role(acme: Acme, user: User, role: str) -> None:
    # Another session (Olivia's) changes the role: a thread of its own, as a request would.
    def work() -> None:
        try:
            membership = Membership.objects.get(team=acme.team, user=user)
            member_role_change(
                principal=Principal.for_user(acme.olivia), membership=membership, role=role
            )
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=10)


@BOTH_WIDTHS
def test_the_dashboard_role_badge_follows_a_role_change_without_reload(
    device: str,
    width: int,
    height: int,
    acme_world: Acme,
    server: str,
    new_page: Callable[..., Any],
) -> None:
    page = new_page(width, height)
    log_in(page, server, acme_world.eddie.email, PASSWORD)
    page.goto(f"{server}/teams/acme/")
    expect(page.locator("[data-live-status]")).to_have_attribute("data-state", "live")
    badge = page.locator("#dashboard-role .badge")
    expect(badge).to_have_text("member")
    expect(page.locator("#recent-events")).to_be_visible()
    page.evaluate("window.__sameDocument = true")

    _change_role(acme_world, acme_world.eddie, "viewer")

    expect(badge).to_have_text("viewer")
    expect(badge).to_have_class(re.compile(r"\bbadge-viewer\b"))
    # The body and the navigation follow too: a viewer does not read the audit trail.
    expect(page.locator("#recent-events")).to_have_count(0)
    navigation = page.get_by_role("navigation", name="Team")
    expect(navigation.get_by_role("link", name="Audit log")).to_have_count(0)
    assert page.evaluate("window.__sameDocument") is True
    assert axe_violations(page) == []
    shot(page, f"{device}-dashboard-role-live")

    _change_role(acme_world, acme_world.eddie, "member")
    expect(badge).to_have_text("member")
    expect(page.locator("#recent-events")).to_be_visible()
    expect(navigation.get_by_role("link", name="Audit log")).to_be_visible()
