"""Every page opens in real Chromium without script errors or missing files, at desktop and
phone widths, and nothing overflows the phone screen sideways. Screenshots land in /tmp/shots/
for people to look at."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.accounts.principal import Principal
from apps.accounts.services import token_create
from apps.rbac.services import custom_role_create
from apps.teams.services import invitation_create
from tests.browser.conftest import axe_violations, log_in, shot
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.browser

TEAM_PAGES = {
    "teams": "/?all=1",
    "team-create": "/create-team/",
    "dashboard": "/teams/acme/",
    "applications": "/teams/acme/applications/",
    "application-new": "/teams/acme/applications/new/",
    "application": "/teams/acme/applications/line-1/",
    "application-edit": "/teams/acme/applications/line-1/edit/",
    "application-delete": "/teams/acme/applications/line-1/delete/",
    "application-access": "/teams/acme/applications/line-1/access/",
    "application-audit": "/teams/acme/applications/line-1/audit/",
    "members": "/teams/acme/members/",
    "roles": "/teams/acme/roles/",
    "role-new": "/teams/acme/roles/new/",
    "settings": "/teams/acme/settings/",
    "team-delete": "/teams/acme/delete/",
    "team-leave": "/teams/acme/leave/",
    "audit": "/teams/acme/audit/",
    "password-change": "/accounts/password/change/",
    "tokens": "/accounts/tokens/",
}
ANONYMOUS_PAGES = {
    "login": "/accounts/login/",
    "password-reset": "/accounts/password/reset/",
    "password-reset-sent": "/accounts/password/reset/sent/",
    "signup-closed": "/accounts/signup/",
}
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}


def _no_sideways_scroll(page: Any) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{page.url} scrolls sideways by {overflow}px"


UNLABELLED_CONTROLS = """
() => Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter((el) => el.type !== 'hidden' && !el.closest('[hidden]'))
  .filter((el) => {
    const name = (el.labels && el.labels.length ? el.labels[0].textContent : '')
      || el.getAttribute('aria-label') || (el.tagName === 'BUTTON' ? el.textContent : '');
    return !name.trim();
  })
  .map((el) => el.outerHTML.slice(0, 120))
"""


def _accessible(page: Any) -> None:
    """Landmarks, one page heading, and a name for every control (what a screen reader needs)."""
    assert page.locator("main").count() == 1, page.url
    assert page.locator("h1").count() == 1, page.url
    unlabelled = page.evaluate(UNLABELLED_CONTROLS)
    assert unlabelled == [], (page.url, unlabelled)
    assert axe_violations(page) == [], page.url


@pytest.mark.parametrize("device", list(WIDTHS))
def test_every_page_opens_cleanly(
    device: str, acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    olivia = acme_world.olivia
    custom_role_create(
        principal=Principal.for_user(olivia),
        team=acme_world.team,
        name="Line operator",
        permissions=["flow:read", "flow:deploy"],
        description="Deploys, never edits",
    )
    invitation_create(
        principal=Principal.for_user(olivia),
        team=acme_world.team,
        email="new@acme.test",
        role="viewer",
    )
    token_create(
        principal=Principal.for_user(olivia), name="Grafana", read_only=True, team_slugs=["acme"]
    )
    width, height = WIDTHS[device]

    anonymous = new_page(width, height)
    for name, path in ANONYMOUS_PAGES.items():
        anonymous.goto(server + path)
        _accessible(anonymous)
        _no_sideways_scroll(anonymous)
        shot(anonymous, f"{device}-{name}")

    page = new_page(width, height)
    log_in(page, server, olivia.email, PASSWORD)
    for name, path in TEAM_PAGES.items():
        response = page.goto(server + path)
        assert response is not None, path
        assert response.status == 200, path
        _accessible(page)
        assert page.locator("header[role=banner]").count() == 1, path
        _no_sideways_scroll(page)
        shot(page, f"{device}-{name}")


PLATFORM_PAGES = {
    "platform-home": "/?all=1",
    "platform-users": "/platform/users/",
    "platform-users-search": "/platform/users/?q=acme&status=active",
    "platform-teams": "/platform/teams/",
}


@pytest.mark.parametrize("device", list(WIDTHS))
def test_platform_admin_pages_open_cleanly(
    device: str, acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    from apps.accounts.services import user_create

    paula = user_create(email="paula@platform.test", password=PASSWORD, is_platform_admin=True)
    pages = {
        **PLATFORM_PAGES,
        "platform-deactivate": f"/platform/users/{acme_world.olivia.pk}/deactivate/",
    }
    page = new_page(*WIDTHS[device])
    log_in(page, server, paula.email, PASSWORD)
    for name, path in pages.items():
        response = page.goto(server + path)
        assert response is not None, path
        assert response.status == 200, path
        _accessible(page)
        _no_sideways_scroll(page)
        shot(page, f"{device}-{name}")
    # The confirmation really switches the account off, and the list says so.
    page.get_by_role("button", name="Deactivate account").click()
    page.wait_for_url("**/platform/users/?q=*")
    assert page.get_by_text("olivia@acme.test deactivated.").is_visible()
    badge = page.locator(f"#user-{acme_world.olivia.pk} .badge-danger")
    assert badge.inner_text() == "deactivated"
