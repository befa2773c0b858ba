"""Open sign-up in real Chromium: a platform admin switches it on from the Users page, then a
visitor finds "Create an account" on the login page and gets in. axe-core clean on every page;
screenshots at 1440 and 390 px."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from apps.accounts.models import User
from apps.accounts.services import user_create
from tests.browser.conftest import BOTH_WIDTHS, log_in, page_is_clean
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.browser
NEW_PASSWORD = "plant-floor-Walrus-42"


@BOTH_WIDTHS
def test_admin_opens_sign_up_and_a_visitor_creates_an_account(
    device: str,
    width: int,
    height: int,
    acme_world: Acme,
    server: str,
    new_page: Callable[..., Any],
) -> None:
    visitor = new_page(width, height)
    visitor.goto(f"{server}/accounts/signup/")
    expect(visitor.get_by_role("heading", name="Sign-up is by invitation")).to_be_visible()
    page_is_clean(visitor, f"{device}-signup-closed")
    visitor.goto(f"{server}/accounts/login/")
    expect(visitor.get_by_text("Accounts come with an invitation")).to_be_visible()

    paula = user_create(email="paula@platform.test", password=PASSWORD, is_platform_admin=True)
    admin = new_page(width, height)
    log_in(admin, server, paula.email, PASSWORD)
    admin.goto(f"{server}/platform/users/")
    page_is_clean(admin, f"{device}-platform-users-signup")
    signup = admin.locator("#signup")
    signup.get_by_label("Anyone who opens the sign-up page").check()
    signup.get_by_role("button", name="Save sign-up choice").click()
    expect(admin.get_by_text("Open sign-up is on")).to_be_visible()
    expect(signup.get_by_label("Anyone who opens the sign-up page")).to_be_checked()

    visitor.goto(f"{server}/accounts/login/")
    visitor.get_by_role("link", name="Create an account").click()
    visitor.wait_for_url("**/accounts/signup/")
    page_is_clean(visitor, f"{device}-signup-open")
    email = f"sam-{device}@newcomer.test"
    visitor.get_by_label("Email").fill(email)
    visitor.get_by_label("Your name").fill("Sam New")
    visitor.get_by_label("Choose a password").fill(NEW_PASSWORD)
    visitor.get_by_label("The same password again").fill(NEW_PASSWORD)
    visitor.get_by_role("button", name="Create account").click()
    visitor.wait_for_url(lambda url: "/accounts/signup/" not in url)
    expect(visitor.get_by_text("Welcome to Manifold.")).to_be_visible()
    page_is_clean(visitor, f"{device}-signup-welcome")
    assert User.objects.filter(email=email, is_active=True).exists()
