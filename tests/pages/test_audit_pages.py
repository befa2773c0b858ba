"""Audit log pages: per team and per application, htmx filters, export links."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.teams.services import application_create, application_update
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], Client]


def test_team_log_lists_the_teams_events(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    response = page_client(acme_world.olivia).get("/teams/acme/audit/")
    content = response.content.decode()
    assert response.status_code == 200
    assert "team.team.created" in content
    assert "team.application.created" in content
    assert "eddie@acme.test" in content
    assert "Globex" not in content
    assert "oscar@globex.test" not in content


def test_audit_log_query_count_does_not_grow_with_events(
    acme_world: Acme, page_client: ClientFor
) -> None:
    client = page_client(acme_world.olivia)
    client.get("/teams/acme/audit/")
    with CaptureQueriesContext(connection) as few:
        client.get("/teams/acme/audit/")
    for number in range(10):
        application_create(
            principal=Principal.for_user(acme_world.olivia),
            team=acme_world.team,
            name=f"A{number}",
            slug=f"a{number}",
        )
    with CaptureQueriesContext(connection) as many:
        client.get("/teams/acme/audit/")
    assert len(many) == len(few)
    print(f"audit log page: {len(many)} queries")


def test_filters_narrow_the_list_and_htmx_gets_only_the_results(
    acme_world: Acme, page_client: ClientFor
) -> None:
    response = page_client(acme_world.olivia).get(
        "/teams/acme/audit/", {"event": "team.application"}, headers={"HX-Request": "true"}
    )
    content = response.content.decode()
    assert "<html" not in content
    assert "team.application.created" in content
    assert "team.member.added" not in content


def test_actor_and_date_filters(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.olivia)
    by_vera = client.get("/teams/acme/audit/", {"actor": "vera@acme.test"}).content.decode()
    assert "team.invitation.accepted" in by_vera
    assert "team.team.created" not in by_vera
    future = client.get("/teams/acme/audit/", {"date_from": "2999-01-01"}).content.decode()
    assert "No events match" in future


def test_application_filter_and_export_links_carry_the_filter(
    acme_world: Acme, page_client: ClientFor
) -> None:
    application_update(
        principal=Principal.for_user(acme_world.olivia),
        application=acme_world.line_1,
        description="New",
    )
    content = (
        page_client(acme_world.olivia)
        .get("/teams/acme/audit/", {"application": "line-1", "event": "team.application"})
        .content.decode()
    )
    assert "team.application.updated" in content
    assert (
        "/api/v1/teams/acme/audit-events/export.csv?event=team.application&amp;application=line-1"
        in content
    )
    assert "export.jsonl?event=team.application&amp;application=line-1" in content


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "must not be before"),
        ({"date_from": "yesterday"}, "Enter a valid date"),
        ({"event": "DROP TABLE"}, "dotted event name"),
        ({"application": "hq"}, "Select a valid choice"),
    ],
)
def test_bad_filters_explain_themselves(
    acme_world: Acme,
    globex_world: Globex,
    page_client: ClientFor,
    query: dict[str, str],
    error: str,
) -> None:
    response = page_client(acme_world.olivia).get("/teams/acme/audit/", query)
    assert response.status_code == 400
    content = response.content.decode()
    assert error in content
    assert "Check the filters" in content
    assert "<table" not in content


def test_exports_are_offered_to_owners_only(acme_world: Acme, page_client: ClientFor) -> None:
    assert b"Export CSV" in page_client(acme_world.olivia).get("/teams/acme/audit/").content
    member_page = page_client(acme_world.eddie).get("/teams/acme/audit/")
    assert member_page.status_code == 200
    assert b"Export CSV" not in member_page.content


def test_the_export_link_streams_the_filtered_csv(acme_world: Acme, page_client: ClientFor) -> None:
    response = page_client(acme_world.olivia).get(
        "/api/v1/teams/acme/audit-events/export.csv", {"event": "team.application"}
    )
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]  # streamed
    assert "team.application.created" in body
    assert "team.member.added" not in body


def test_viewers_and_outsiders_cannot_read_the_log(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    assert page_client(acme_world.vera).get("/teams/acme/audit/").status_code == 403
    assert page_client(globex_world.oscar).get("/teams/acme/audit/").status_code == 404


def test_application_log_shows_only_that_application(
    acme_world: Acme, page_client: ClientFor
) -> None:
    other = application_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Two",
        slug="two",
    )
    application_update(
        principal=Principal.for_user(acme_world.olivia), application=other, description="changed"
    )
    content = (
        page_client(acme_world.olivia)
        .get("/teams/acme/applications/line-1/audit/")
        .content.decode()
    )
    assert "team.application.created" in content
    assert "team.application.updated" not in content
    assert "team.member.added" not in content
    assert 'name="application"' not in content


def test_another_teams_application_log_is_not_found(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    client = page_client(acme_world.olivia)
    assert client.get("/teams/acme/applications/hq/audit/").status_code == 404
    assert client.get("/teams/globex/applications/hq/audit/").status_code == 404


def test_pagination_keeps_the_filter(acme_world: Acme, page_client: ClientFor) -> None:
    for number in range(55):
        application_create(
            principal=Principal.for_user(acme_world.olivia),
            team=acme_world.team,
            name=f"A{number}",
            slug=f"a{number}",
        )
    client = page_client(acme_world.olivia)
    first = client.get("/teams/acme/audit/", {"event": "team.application"}).content.decode()
    assert "Page 1 of 2" in first
    assert "event=team.application&amp;page=2" in first
    second = client.get(
        "/teams/acme/audit/", {"event": "team.application", "page": "2"}
    ).content.decode()
    assert "Page 2 of 2" in second
