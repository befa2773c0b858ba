"""Every team page names the permission key it needs, and a key that exists."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from apps.accounts.models import User
from apps.rbac.permissions import PERMISSIONS
from tests.conftest import Acme


def _page_patterns() -> list[tuple[str, URLPattern]]:
    found: list[tuple[str, URLPattern]] = []
    for resolver in get_resolver().url_patterns:
        if not isinstance(resolver, URLResolver) or resolver.namespace not in {"teams", "audit"}:
            continue
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLPattern):
                found.append((f"{resolver.namespace}:{pattern.name}", pattern))
    return found


def test_every_team_scoped_page_names_a_known_permission() -> None:
    team_scoped = [
        (name, pattern)
        for name, pattern in _page_patterns()
        if "<slug:team_slug>" in str(pattern.pattern)
    ]
    assert len(team_scoped) >= 20
    for name, pattern in team_scoped:
        permission = getattr(pattern.callback, "permission", None)
        assert permission in PERMISSIONS, f"{name} names no permission ({permission!r})"
    print(f"team pages with a named permission: {len(team_scoped)}")


@pytest.mark.parametrize(
    ("persona", "shown", "hidden"),
    [
        ("olivia", ["Applications", "Members", "Roles", "Audit log", "Settings"], []),
        ("eddie", ["Applications", "Members", "Roles", "Audit log"], ["Settings"]),
        ("dana", ["Applications"], ["Members", "Roles", "Audit log", "Settings"]),
    ],
)
def test_side_navigation_shows_only_pages_the_role_opens(
    acme_world: Acme,
    page_client: Callable[[User | None], Client],
    persona: str,
    shown: list[str],
    hidden: list[str],
) -> None:
    client = page_client(getattr(acme_world, persona))
    html = client.get("/teams/acme/").content.decode()
    nav = html[
        html.index('aria-label="Team"') : html.index("</nav>", html.index('aria-label="Team"'))
    ]
    for label in shown:
        assert f">{label}</a>" in nav, label
    for label in hidden:
        assert f">{label}</a>" not in nav, label
    for href in re.findall(r'href="(/teams/acme/[^"]*)"', nav):
        assert client.get(href).status_code == 200, f"{persona} is offered {href}"
