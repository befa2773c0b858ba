"""Every API list shares one pagination: bounded ``limit``/``offset``, a clear 400 otherwise.

The lists are found, not listed: every API route of ``tests/routes.py`` whose GET (as the route's
rightful actor) answers a page ``{count, next, previous, results}`` is a list, so a new list
endpoint is checked the moment it has its route row (issue #11 finding 5: a huge ``limit`` was a
500).
"""

from __future__ import annotations

from typing import Any

import pytest

from apps.core.pagination import MAX_LIMIT
from tests.conftest import Acme, Globex
from tests.routes import (
    World,
    all_routes,
    build_world,
    client_as,
    handled_methods,
    persona,
    route_url,
    sample_of,
)

PAGE_KEYS = {"count", "next", "previous", "results"}
BAD_PARAMETERS = [
    ("limit", "99999999999999999999999"),
    ("limit", "abc"),
    ("limit", "0"),
    ("limit", "-1"),
    ("limit", str(MAX_LIMIT + 1)),
    ("limit", "1.5"),
    ("offset", "99999999999999999999999"),
    ("offset", "-1"),
    ("offset", "x"),
]


@pytest.fixture
def world(acme_world: Acme, globex_world: Globex) -> World:
    return build_world(acme_world, globex_world)


def list_endpoints(world: World) -> list[tuple[str, Any]]:
    """(url, client of the rightful actor) of every API route whose GET answers a page."""
    found = []
    for route in all_routes():
        sample = sample_of(route)
        handled = handled_methods(route)
        if not sample.api or (handled is not None and "get" not in handled):
            continue
        client = client_as(persona(world, sample.actor))
        url = route_url(route, sample.kwargs(world))
        response = client.get(url)
        if response.status_code != 200 or getattr(response, "streaming", False):
            continue
        is_json = "json" in response.get("Content-Type", "")
        if is_json and isinstance(response.json(), dict) and set(response.json()) >= PAGE_KEYS:
            found.append((url, client))
    return found


def test_every_list_bounds_limit_and_offset_with_a_clear_400(world: World) -> None:
    lists = list_endpoints(world)
    failures: list[str] = []
    for url, client in lists:
        for name, value in BAD_PARAMETERS:
            response = client.get(url, {name: value})
            body = response.json()
            if response.status_code != 400 or name not in body.get("error", {}).get("fields", {}):
                failures.append(f"GET {url}?{name}={value} -> {response.status_code} {body}")
        first = client.get(url, {"limit": 1})
        largest = client.get(url, {"limit": MAX_LIMIT, "offset": 0})
        if first.status_code != 200 or len(first.json()["results"]) > 1:
            failures.append(f"GET {url}?limit=1 -> {first.status_code}")
        if largest.status_code != 200 or largest.json()["count"] < len(first.json()["results"]):
            failures.append(f"GET {url}?limit={MAX_LIMIT} -> {largest.status_code}")
    urls = sorted(url for url, _ in lists)
    print(f"api lists: {len(lists)} list endpoints x {len(BAD_PARAMETERS)} bad parameters: {urls}")
    # The known lists are found (the discovery itself cannot silently find nothing).
    assert "/api/v1/teams/acme/audit-events/" in urls
    assert "/api/v1/platform/users/" in urls
    assert "/api/v1/teams/acme/applications/" in urls
    assert failures == [], "\n".join(failures)


def test_a_page_links_to_the_next_one(world: World) -> None:
    client = client_as(world.acme.olivia)
    response = client.get("/api/v1/teams/acme/audit-events/", {"limit": 2})
    page = response.json()
    assert response.status_code == 200
    assert len(page["results"]) == 2
    assert page["count"] > 2
    assert "limit=2" in page["next"]
    assert "offset=2" in page["next"]
    following = client.get(page["next"]).json()
    first_ids = {row["id"] for row in page["results"]}
    assert first_ids.isdisjoint(row["id"] for row in following["results"])
