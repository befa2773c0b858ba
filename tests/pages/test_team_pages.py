"""Team list, creation, dashboard, settings, deletion and leaving."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.models import AuditSettings
from apps.teams.models import Membership, Team
from apps.teams.services import team_create
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], Client]


def test_team_list_shows_only_my_teams_in_a_fixed_number_of_queries(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    client = page_client(acme_world.olivia)
    client.get("/?all=1")  # warm per-process caches (content types) first
    with CaptureQueriesContext(connection) as few:
        response = client.get("/?all=1")
    assert b"Acme Plant" in response.content
    assert b"Globex" not in response.content
    for number in range(5):
        team_create(
            principal=Principal.for_user(acme_world.olivia),
            name=f"Extra {number}",
            slug=f"extra-{number}",
        )
    with CaptureQueriesContext(connection) as many:
        response = client.get("/?all=1")
    assert b"Extra 4" in response.content
    assert len(many) == len(few), [query["sql"] for query in many]
    print(f"team list: {len(many)} queries for 6 teams")


def test_a_user_without_teams_is_invited_to_create_one(db: None, page_client: ClientFor) -> None:
    from tests.conftest import make_user

    response = page_client(make_user("new@example.test")).get("/")
    assert b"You are not in a team yet" in response.content


def test_create_team_derives_the_slug_and_makes_me_owner(
    acme_world: Acme, page_client: ClientFor
) -> None:
    response = page_client(acme_world.vera).post("/create-team/", {"name": "Vera's Lab"})
    assert response.status_code == 302
    assert response["Location"] == "/teams/veras-lab/"
    team = Team.objects.get(slug="veras-lab")
    assert Membership.objects.get(team=team, user=acme_world.vera).role == "owner"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "Another Acme", "slug": "acme"}, b"id_slug_error"),
        ({"name": "Bad", "slug": "-bad-"}, b"id_slug_error"),
        ({"name": "", "slug": "empty"}, b"id_name_error"),
        ({"name": "!!!"}, b"id_slug_error"),
    ],
)
def test_create_team_bad_input_creates_nothing(
    acme_world: Acme, page_client: ClientFor, data: dict[str, str], error: bytes
) -> None:
    before = Team.objects.count()
    response = page_client(acme_world.vera).post("/create-team/", data)
    assert response.status_code == 400
    assert error in response.content
    assert Team.objects.count() == before


def test_dashboard_shows_applications_members_and_recent_events(
    acme_world: Acme, page_client: ClientFor
) -> None:
    response = page_client(acme_world.olivia).get("/teams/acme/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Line 1" in content
    assert "added dana@acme.test to the team" in content
    assert 'data-live-team="acme"' in content


def test_dashboard_for_a_dashboard_user_hides_what_they_may_not_read(
    acme_world: Acme, page_client: ClientFor
) -> None:
    content = page_client(acme_world.dana).get("/teams/acme/").content.decode()
    assert "Recent activity" not in content
    assert "to the team" not in content
    assert "New application" not in content


def test_recent_events_refresh_returns_only_the_fragment(
    acme_world: Acme, page_client: ClientFor
) -> None:
    response = page_client(acme_world.olivia).get(
        "/teams/acme/", headers={"HX-Request": "true", "HX-Target": "recent-events"}
    )
    assert b"<html" not in response.content
    assert b"added dana@acme.test to the team" in response.content


def test_another_teams_pages_answer_404(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    client = page_client(globex_world.oscar)
    for url in (
        "/teams/acme/",
        "/teams/acme/settings/",
        "/teams/acme/members/",
        "/teams/no-such-team/",
    ):
        assert client.get(url).status_code == 404, url


def test_rename_team_in_settings(acme_world: Acme, page_client: ClientFor) -> None:
    response = page_client(acme_world.olivia).post(
        "/teams/acme/settings/", {"form": "team", "name": "Acme Works", "slug": "acme-works"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/teams/acme-works/settings/"
    assert Team.objects.get(pk=acme_world.team.pk).name == "Acme Works"


def test_settings_duplicate_slug_is_an_inline_error(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    response = page_client(acme_world.olivia).post(
        "/teams/acme/settings/", {"form": "team", "name": "Acme", "slug": "globex"}
    )
    assert response.status_code == 400
    assert b"id_slug_error" in response.content
    assert Team.objects.get(pk=acme_world.team.pk).slug == "acme"


def test_retention_is_saved_and_bad_values_are_refused(
    acme_world: Acme, page_client: ClientFor
) -> None:
    client = page_client(acme_world.olivia)
    bad = client.post("/teams/acme/settings/", {"form": "retention", "audit_retention_days": "0"})
    assert bad.status_code == 400
    assert b"id_audit_retention_days_error" in bad.content
    assert not AuditSettings.objects.filter(team_id=acme_world.team.pk).exists()
    client.post("/teams/acme/settings/", {"form": "retention", "audit_retention_days": "90"})
    assert AuditSettings.objects.get(team_id=acme_world.team.pk).audit_retention_days == 90


def test_members_cannot_change_settings(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.eddie)
    assert client.get("/teams/acme/settings/").status_code == 403
    response = client.post("/teams/acme/settings/", {"form": "team", "name": "Hijacked"})
    assert response.status_code == 403
    assert b"permission to rename the team" in response.content
    assert b"team:edit" not in response.content, "403 pages speak in words, not keys"
    assert Team.objects.get(pk=acme_world.team.pk).name == "Acme Plant"


def test_deleting_a_team_needs_its_slug_typed(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.olivia)
    wrong = client.post("/teams/acme/delete/", {"confirm": "ACME"})
    assert wrong.status_code == 400
    assert Team.objects.filter(slug="acme").exists()
    assert client.post("/teams/acme/delete/", {"confirm": "acme"}).status_code == 302
    assert not Team.objects.filter(slug="acme").exists()


def test_members_cannot_delete_the_team(acme_world: Acme, page_client: ClientFor) -> None:
    assert (
        page_client(acme_world.eddie).post("/teams/acme/delete/", {"confirm": "acme"}).status_code
        == 403
    )
    assert Team.objects.filter(slug="acme").exists()


def test_a_member_can_leave(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.vera)
    assert client.get("/teams/acme/leave/").status_code == 200
    assert client.post("/teams/acme/leave/").status_code == 302
    assert not Membership.objects.filter(team=acme_world.team, user=acme_world.vera).exists()


def test_the_last_owner_cannot_leave(acme_world: Acme, page_client: ClientFor) -> None:
    response = page_client(acme_world.olivia).post("/teams/acme/leave/")
    assert response.status_code == 409
    assert b"at least one owner" in response.content
    assert Membership.objects.filter(team=acme_world.team, user=acme_world.olivia).exists()


def test_team_switcher_lists_my_teams(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    team_create(principal=Principal.for_user(acme_world.olivia), name="Second Site", slug="second")
    content = page_client(acme_world.olivia).get("/teams/acme/").content.decode()
    assert 'href="/teams/second/"' in content
    assert 'href="/teams/globex/"' not in content
