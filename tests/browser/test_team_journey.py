"""The foundation journey in real Chromium: log in, create a team and an application, invite a
member who accepts in a second browser, change their role, and read it all in the audit log."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from playwright.sync_api import expect

from apps.audit.models import AuditEvent
from apps.teams.models import Membership, Team
from tests.browser.conftest import log_in, shot
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.browser


def test_owner_builds_a_team_and_a_member_joins(server: str, new_page: Callable[..., Any]) -> None:
    olivia = make_user("olivia@acme.test", "Olivia Owner")
    eddie = make_user("eddie@acme.test", "Eddie Editor")

    owner = new_page()
    log_in(owner, server, olivia.email, PASSWORD)
    expect(owner.get_by_role("heading", name="Your teams")).to_be_visible()

    # Create a team; the short name is derived from the name.
    owner.get_by_role("link", name="Create your first team").click()
    owner.get_by_label("Name", exact=True).fill("Acme Plant")
    owner.get_by_role("button", name="Create team").click()
    expect(owner.get_by_role("heading", name="Acme Plant")).to_be_visible()
    assert Team.objects.filter(slug="acme-plant").exists()

    # Create an application.
    owner.get_by_role("navigation", name="Team").get_by_role("link", name="Applications").click()
    owner.get_by_role("link", name="New application").click()
    owner.get_by_label("Name", exact=True).fill("Line 1")
    owner.get_by_label("Description").fill("Filling line vibration monitoring")
    owner.get_by_role("button", name="Create application").click()
    expect(owner.get_by_text("Application “Line 1” created.")).to_be_visible()
    expect(owner.get_by_role("heading", name="Line 1", exact=True)).to_be_visible()
    expect(owner.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")

    # Invite Eddie as a viewer; the link arrives by email.
    owner.get_by_role("navigation", name="Team").get_by_role("link", name="Members").click()
    owner.get_by_label("Email address").fill(eddie.email)
    owner.get_by_label("Role", exact=True).select_option("viewer")
    owner.get_by_role("button", name="Send invitation").click()
    expect(owner.get_by_text(f"Invitation sent to {eddie.email}")).to_be_visible()
    expect(owner.get_by_role("button", name=f"Revoke invitation for {eddie.email}")).to_be_visible()
    link = re.search(r"http://\S+/invitations/\S+/", str(mail.outbox[-1].body))
    assert link is not None

    # Eddie opens the link in his own browser, signs in, and accepts.
    member = new_page()
    member.goto(link.group(0))
    member.wait_for_url(re.compile(r"/accounts/login/"))
    member.get_by_label("Email").fill(eddie.email)
    member.get_by_label("Password").fill(PASSWORD)
    member.get_by_role("button", name="Log in").click()
    expect(member.get_by_role("heading", name="Join Acme Plant?")).to_be_visible()
    member.get_by_role("button", name="Accept and join").click()
    expect(member.get_by_text("Welcome to Acme Plant.")).to_be_visible()
    assert Membership.objects.get(team__slug="acme-plant", user=eddie).role == "viewer"

    # Olivia makes Eddie a member, in his row of the members page.
    owner.reload()
    owner.get_by_label(f"Role of {eddie.email}").select_option("member")
    expect(owner.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    assert Membership.objects.get(team__slug="acme-plant", user=eddie).role == "member"

    # Everything above is in the audit log, and the htmx filter narrows it in place.
    owner.get_by_role("navigation", name="Team").get_by_role("link", name="Audit log").click()
    table = owner.locator("#audit-results")
    for name in (
        "team.team.created",
        "team.application.created",
        "team.invitation.created",
        "team.invitation.accepted",
        "team.member.role_changed",
    ):
        expect(table.get_by_text(name, exact=True)).to_be_visible()
    owner.get_by_label("Event", exact=True).fill("team.member")
    owner.get_by_role("button", name="Filter").click()
    expect(table.get_by_text("team.application.created", exact=True)).to_have_count(0)
    expect(table.get_by_text("team.member.role_changed", exact=True)).to_be_visible()
    assert "event=team.member" in owner.url
    shot(owner, "journey-audit-filtered")
    count = AuditEvent.objects.filter(team_key=Team.objects.get(slug="acme-plant").pk).count()
    assert count >= 6
