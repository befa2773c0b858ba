"""RBAC matrix (RELIABILITY.md family 4): role x permission table vs real status codes.

For every team route and method whose view names a permission key, each acme persona (owner,
member, viewer, dashboard) calls it with the enumerator's sample: a 2xx/3xx (or a business-rule
4xx such as 409 after the gate) must happen exactly when ``role_allows(role, key)`` is true, and
403/404 exactly when it is false.
"""

from __future__ import annotations

from typing import Any

import pytest

from apps.rbac.permissions import PERMISSIONS, role_allows
from tests.conftest import Acme, Globex
from tests.test_isolation_enumerator import (
    METHODS,
    SAMPLES,
    Route,
    World,
    all_routes,
    build_world,
    client_as,
    handled_methods,
    persona,
    probe,
    route_url,
)

PERSONAS = {"olivia": "owner", "eddie": "member", "vera": "viewer", "dana": "dashboard"}


@pytest.fixture
def world(acme_world: Acme, globex_world: Globex) -> World:
    return build_world(acme_world, globex_world)


# Pages whose decorator names the key for viewing while a method checks a stricter key inside
# the view. The matrix holds them to the key actually enforced; a page that declares its keys
# per method (``wrapper.permissions = {"post": ...}``) needs no entry here.
CHECKED_INSIDE_VIEW: dict[tuple[str, str], str] = {
    ("teams/<slug:team_slug>/applications/<slug:app_slug>/access/", "post"): "member:role",
}


def permission_of(route: Route, method: str) -> str | None:
    """The key the view names for this method, however the view declares it."""
    callback: Any = route.callback
    per_method = getattr(callback, "permissions", None)
    if isinstance(per_method, dict) and method in per_method and not hasattr(callback, "cls"):
        return str(per_method[method])
    if (route.pattern, method) in CHECKED_INSIDE_VIEW:
        return CHECKED_INSIDE_VIEW[(route.pattern, method)]
    page_key = getattr(callback, "permission", None)
    if isinstance(page_key, str):
        return page_key
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if cls is None:
        return None
    declared = getattr(cls, "permissions", None)
    actions = getattr(callback, "actions", None)
    if isinstance(declared, dict):
        if actions:
            action = actions.get(method)
            return declared.get(action) if action else None
        return declared.get(method)
    key = getattr(cls, "permission", None)
    return key if isinstance(key, str) else None


def matrix_cells() -> list[tuple[Route, str, str]]:
    cells = []
    for route in all_routes():
        if "<slug:team_slug>" not in route.pattern:
            continue  # personal and public routes: no team role applies
        sample = SAMPLES[route.pattern]
        handled = handled_methods(route)
        for method in METHODS:
            if method != "get" and method not in sample.bodies:
                continue
            if handled is not None and method not in handled:
                continue
            key = permission_of(route, method)
            if key is not None:
                cells.append((route, method, key))
    return cells


def test_every_team_route_names_a_known_permission() -> None:
    team_routes = [r for r in all_routes() if "<slug:team_slug>" in r.pattern]
    unnamed = [
        r.pattern
        for r in team_routes
        if permission_of(r, "get") is None and all(permission_of(r, m) is None for m in METHODS)
    ]
    assert unnamed == [], f"team routes that name no permission key: {unnamed}"
    unknown = [(r.pattern, key) for r, _, key in matrix_cells() if key not in PERMISSIONS]
    assert unknown == []


def test_role_permission_matrix_matches_status_codes(world: World) -> None:
    cells = matrix_cells()
    mismatches: list[str] = []
    calls = 0
    for route, method, key in cells:
        sample = SAMPLES[route.pattern]
        url = route_url(route, sample.kwargs(world))
        body = sample.bodies[method](world) if method in sample.bodies else {}
        for name, role in PERSONAS.items():
            client = client_as(persona(world, name))
            response, _, _ = probe(client, method, url, body, sample.api)
            calls += 1
            status = response.status_code
            denied = status in {403, 404}
            expected_allowed = role_allows(role, key)
            if status >= 500 or denied == expected_allowed:
                mismatches.append(
                    f"{method.upper()} {url} needs {key}: {role} ({name}) got {status}, "
                    f"role_allows={expected_allowed}"
                )
    keys = sorted({key for _, _, key in cells})
    print(
        f"rbac matrix: {len(cells)} endpoint-methods x {len(PERSONAS)} roles = {calls} calls, "
        f"{len(keys)} permission keys, mismatches: {len(mismatches)}"
    )
    assert mismatches == [], "\n".join(mismatches)
