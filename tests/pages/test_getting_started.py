"""The dashboard's getting-started checklist ticks itself off from real state."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.teams.services import team_create
from apps.teams.views.getting_started import STEPS
from tests.conftest import Acme, add_member

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], Client]


def _steps(html: str) -> list[str]:
    start = html.index('aria-labelledby="start-title"')
    return [chunk.split('"')[0] for chunk in html[start:].split('class="step step-')[1:5]]


def test_a_new_team_starts_at_create_an_application(
    acme_world: Acme, page_client: ClientFor
) -> None:
    team_create(principal=Principal.for_user(acme_world.olivia), name="Fresh", slug="fresh")
    html = page_client(acme_world.olivia).get("/teams/fresh/").content.decode()
    assert _steps(html) == ["todo", "later", "later", "later"]
    assert 'href="/teams/fresh/applications/new/">Create an application' in html
    assert "Coming with devices" in html
    assert "0 of 4 done" in html


def test_the_application_step_ticks_itself_off(acme_world: Acme, page_client: ClientFor) -> None:
    html = page_client(acme_world.olivia).get("/teams/acme/").content.decode()
    assert _steps(html) == ["done", "later", "later", "later"]
    assert "1 of 4 done" in html


def test_a_reader_who_cannot_create_gets_no_dead_link(
    acme_world: Acme, page_client: ClientFor
) -> None:
    fresh = team_create(principal=Principal.for_user(acme_world.olivia), name="Fresh", slug="fresh")
    add_member(fresh, acme_world.olivia, acme_world.vera, "viewer")
    html = page_client(acme_world.vera).get("/teams/fresh/").content.decode()
    assert _steps(html)[0] == "todo"
    assert "/teams/fresh/applications/new/" not in html


def test_the_live_refresh_returns_counters_lists_and_checklist_together(
    acme_world: Acme, page_client: ClientFor
) -> None:
    response = page_client(acme_world.olivia).get(
        "/teams/acme/", headers={"HX-Request": "true", "HX-Target": "dashboard-body"}
    )
    html = response.content.decode()
    assert "<html" not in html
    assert 'class="stat"' in html
    assert "Line 1" in html
    assert "Getting started" in html
    assert "Recent activity" in html


def test_after_a_demotion_the_refresh_drops_the_activity_it_may_not_read(
    acme_world: Acme, page_client: ClientFor
) -> None:
    response = page_client(acme_world.dana).get(
        "/teams/acme/", headers={"HX-Request": "true", "HX-Target": "dashboard-body"}
    )
    html = response.content.decode()
    assert "Recent activity" not in html
    assert "Nothing has happened" not in html


def test_every_later_step_says_when_it_comes() -> None:
    for step in STEPS:
        assert (step.done is None) == bool(step.later), step.key
