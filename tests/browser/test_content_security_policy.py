"""Finding 9 in real Chromium: under the strict Content-Security-Policy the pages raise no
violation, htmx swaps content and the live websocket connects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(event.violatedDirective + ' ' + event.blockedURI);
});
"""


def test_pages_htmx_and_live_updates_run_under_the_policy(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    log_in(page, server, acme_world.olivia.email, PASSWORD)

    response = page.goto(f"{server}/teams/acme/audit/")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # htmx (a static file) runs: filtering swaps the results in place, with no full reload.
    page.evaluate("window.__notReloaded = true")
    with page.expect_response(lambda answer: "/teams/acme/audit/" in answer.url):
        page.get_by_role("combobox", name="Event").fill("team.member")
        page.get_by_role("button", name="Filter").click()
    assert page.evaluate("window.__notReloaded") is True
    assert page.evaluate("window.__cspViolations") == []

    # The live socket (connect-src 'self') opens from the dashboard's static script.
    with page.expect_websocket(lambda socket: "/ws/teams/acme/events/" in socket.url) as opened:
        page.goto(f"{server}/teams/acme/")
    assert not opened.value.is_closed()
    assert page.evaluate("window.__cspViolations") == []
