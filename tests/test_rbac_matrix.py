"""RBAC matrix (RELIABILITY.md family 4): role x permission table vs real status codes.

For every team route and method whose view names a permission key (rows of ``tests/routes.py``),
each acme persona (owner, member, viewer, dashboard) calls it with the route's sample: a 2xx/3xx
(or a business-rule 4xx such as 409 after the gate) must happen exactly when
``role_allows(role, key)`` is true, and 403/404 exactly when it is false. The API cells are also
called with the owner's read-only token (allowed exactly for read-only keys), with a token of the
owner limited to another team (404) and anonymously (401); every refusal changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.rbac.permissions import PERMISSIONS, role_allows
from tests.conftest import Acme, Globex, add_member
from tests.routes import (
    METHODS,
    Route,
    Sample,
    World,
    all_routes,
    build_world,
    changed,
    client_as,
    handled_methods,
    persona,
    probe,
    route_url,
    sample_of,
)

# Outside `make test-fast`: every route x every role and token.
pytestmark = pytest.mark.slow

PERSONAS = {"olivia": "owner", "eddie": "member", "vera": "viewer", "dana": "dashboard"}
DENIED = {403, 404}
# A token's last use is recorded on every authenticated request, refused or not.
TOKEN_BOOKKEEPING = {"accounts.PersonalAccessToken"}

SAFE_METHODS = ("get", "head", "options")


@pytest.fixture
def world(acme_world: Acme, globex_world: Globex) -> World:
    return build_world(acme_world, globex_world)


def permission_of(route: Route, method: str) -> str | None:
    """The key the view names for this method, however the view declares it."""
    callback: Any = route.callback
    per_method = getattr(callback, "permissions", None)
    if isinstance(per_method, dict) and method in per_method and not hasattr(callback, "cls"):
        return str(per_method[method])
    inside = sample_of(route).checked_inside.get(method)
    if inside is not None:
        return inside
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
        sample = sample_of(route)
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


def _calls(world: World, api_only: bool) -> Iterator[tuple[str, str, Sample, str, dict[str, Any]]]:
    """(method, url, sample, key, body) per matrix cell."""
    for route, method, key in matrix_cells():
        sample = sample_of(route)
        if api_only and not sample.api:
            continue
        url = route_url(route, sample.kwargs(world))
        body = sample.bodies[method](world) if method in sample.bodies else {}
        yield method, url, sample, key, body


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
    mismatches: list[str] = []
    calls = 0
    cells = matrix_cells()
    for method, url, sample, key, body in _calls(world, api_only=False):
        for name, role in PERSONAS.items():
            client = client_as(persona(world, name))
            response, before, after = probe(client, method, url, body, sample.api)
            calls += 1
            status = response.status_code
            denied = status in DENIED
            expected_allowed = role_allows(role, key)
            where = f"{method.upper()} {url} needs {key}: {role} ({name}) got {status}"
            if status >= 500 or denied == expected_allowed:
                mismatches.append(f"{where}, role_allows={expected_allowed}")
            elif denied and changed(before, after):
                mismatches.append(f"{where}: refused but changed {changed(before, after)}")
            elif (
                sample.api
                and status == 403
                and response.json()["error"]["code"] != "permission_denied"
            ):
                mismatches.append(f"{where}: {response.json()}")
    keys = sorted({key for _, _, key in cells})
    print(
        f"rbac matrix: {len(cells)} endpoint-methods x {len(PERSONAS)} roles = {calls} calls, "
        f"{len(keys)} permission keys, mismatches: {len(mismatches)}"
    )
    assert mismatches == [], "\n".join(mismatches)


def test_tokens_and_anonymous_callers_follow_the_matrix(
    world: World, token_client: Callable[..., APIClient]
) -> None:
    """The owner's read-only token may read only (no unsafe method at all); a token limited to
    globex (olivia is also in globex here) sees nothing of acme; without credentials the answer
    is 401."""
    add_member(world.globex.team, world.globex.oscar, world.acme.olivia, "member")
    read_only = token_client(world.acme.olivia, read_only=True)
    globex_only = token_client(world.acme.olivia, teams=["globex"])
    mismatches: list[str] = []
    calls = 0
    for method, url, sample, key, body in _calls(world, api_only=True):
        expected = {
            # Read-only means no writes anywhere: an unsafe method is refused whatever its key.
            "read-only token": (
                None if PERMISSIONS[key].read_only and method in SAFE_METHODS else {403}
            ),
            "token limited to globex": {404},
            "anonymous": {401},
        }
        clients = {
            "read-only token": read_only,
            "token limited to globex": globex_only,
            "anonymous": APIClient(),
        }
        for caller, client in clients.items():
            response, before, after = probe(client, method, url, body, sample.api)
            calls += 1
            status = response.status_code
            refused = status in {401, 403, 404}
            where = f"{method.upper()} {url} needs {key}: {caller} got {status}"
            wanted = expected[caller]
            if status >= 500 or (wanted is None and refused):
                mismatches.append(f"{where}, expected it allowed")
            elif wanted is not None and status not in wanted:
                mismatches.append(f"{where}, expected {sorted(wanted)}")
            elif refused and set(changed(before, after)) - TOKEN_BOOKKEEPING:
                mismatches.append(f"{where}: refused but changed {changed(before, after)}")
    print(f"rbac tokens: {calls} calls (read-only, other-team token, anonymous)")
    assert calls > 0
    assert mismatches == [], "\n".join(mismatches)
