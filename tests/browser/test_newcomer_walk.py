"""The newcomer's walk in real Chromium: invitation link -> sign-up -> team -> application page,
axe-core clean on every page, at 1440 and 390 px. Screenshots land in /tmp/shots/."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.teams.models import Membership
from apps.teams.services import invitation_create
from tests.browser.conftest import BOTH_WIDTHS, page_is_clean
from tests.conftest import Acme

pytestmark = pytest.mark.browser
NEW_PASSWORD = "plant-floor-Walrus-42"


@BOTH_WIDTHS
def test_invited_newcomer_signs_up_joins_and_finds_the_application(
    device: str,
    width: int,
    height: int,
    acme_world: Acme,
    server: str,
    new_page: Callable[..., Any],
) -> None:
    email = f"nina-{device}@newcomer.test"
    secret = invitation_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        email=email,
        role="member",
    ).secret
    page = new_page(width, height)

    page.goto(f"{server}/invitations/{secret}/")
    page.wait_for_url(f"**/accounts/signup/{secret}/")
    assert page.get_by_label("Email").input_value() == email
    page_is_clean(page, f"walk-{device}-1-signup")
    page.get_by_label("Your name").fill("Nina New")
    page.get_by_label("Choose a password").fill(NEW_PASSWORD)
    page.get_by_label("The same password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Create account and join").click()

    page.wait_for_url("**/teams/acme/")
    assert page.get_by_text("Welcome to Acme Plant.").is_visible()
    page_is_clean(page, f"walk-{device}-2-dashboard")
    nina = User.objects.get(email=email)
    assert Membership.objects.get(team=acme_world.team, user=nina).role == "member"

    page.get_by_role("navigation", name="Team").get_by_role("link", name="Applications").click()
    page.wait_for_url("**/teams/acme/applications/")
    page_is_clean(page, f"walk-{device}-3-applications")

    page.get_by_role("link", name="Line 1").first.click()
    page.wait_for_url("**/teams/acme/applications/line-1/")
    page_is_clean(page, f"walk-{device}-4-application")
    tabs = page.get_by_role("navigation", name="Application sections")
    for label, path, name in (
        ("Access", "access/", "5-application-access"),
        ("Audit log", "audit/", "6-application-audit"),
    ):
        tabs.get_by_role("link", name=label).click()
        page.wait_for_url(f"**/teams/acme/applications/line-1/{path}")
        page_is_clean(page, f"walk-{device}-{name}")
