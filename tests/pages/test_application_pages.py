"""Applications: list, create, edit, delete with confirmation, per-application roles."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.teams.models import Application, ApplicationRoleOverride, Membership
from apps.teams.services import application_create, application_override_set
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], Client]


def _membership(acme: Acme, user: User) -> Membership:
    return Membership.objects.get(team=acme.team, user=user)


def test_application_list_in_a_fixed_number_of_queries(
    acme_world: Acme, page_client: ClientFor
) -> None:
    client = page_client(acme_world.olivia)
    client.get("/teams/acme/applications/")  # warm per-process caches (content types) first
    with CaptureQueriesContext(connection) as few:
        assert b"Line 1" in client.get("/teams/acme/applications/").content
    for number in range(6):
        application_create(
            principal=Principal.for_user(acme_world.olivia),
            team=acme_world.team,
            name=f"App {number}",
            slug=f"a{number}",
        )
    with CaptureQueriesContext(connection) as many:
        assert b"App 5" in client.get("/teams/acme/applications/").content
    assert len(many) == len(few), "\n".join(q["sql"] for q in many.captured_queries)
    print(f"application list: {len(many)} queries for 7 applications")


def test_owner_creates_an_application(acme_world: Acme, page_client: ClientFor) -> None:
    response = page_client(acme_world.olivia).post(
        "/teams/acme/applications/new/",
        {"name": "Compressor anomalies", "description": "Line 3 compressors"},
    )
    assert response.status_code == 302
    application = Application.objects.get(team=acme_world.team, slug="compressor-anomalies")
    assert application.description == "Line 3 compressors"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "Line one again", "slug": "line-1"}, b"id_slug_error"),
        ({"name": "", "slug": "x"}, b"id_name_error"),
        ({"name": "Bad", "slug": "Bad Slug"}, b"id_slug_error"),
        ({"name": "Long", "description": "x" * 2001}, b"id_description_error"),
    ],
)
def test_create_application_bad_input_creates_nothing(
    acme_world: Acme, page_client: ClientFor, data: dict[str, str], error: bytes
) -> None:
    response = page_client(acme_world.olivia).post("/teams/acme/applications/new/", data)
    assert response.status_code == 400
    assert error in response.content
    assert Application.objects.filter(team=acme_world.team).count() == 1


def test_the_same_slug_in_another_team_is_fine(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    response = page_client(acme_world.olivia).post(
        "/teams/acme/applications/new/", {"name": "HQ", "slug": "hq"}
    )
    assert response.status_code == 302


def test_members_and_outsiders_cannot_create_applications(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    data = {"name": "Sneaky", "slug": "sneaky"}
    assert (
        page_client(acme_world.eddie).post("/teams/acme/applications/new/", data).status_code == 403
    )
    assert (
        page_client(globex_world.oscar).post("/teams/acme/applications/new/", data).status_code
        == 404
    )
    assert not Application.objects.filter(slug="sneaky").exists()


def test_edit_application(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.olivia)
    form = client.get("/teams/acme/applications/line-1/edit/")
    assert b'value="Line 1"' in form.content
    response = client.post(
        "/teams/acme/applications/line-1/edit/",
        {"name": "Line One", "slug": "line-one", "description": "Renamed"},
    )
    assert response.status_code == 302
    acme_world.line_1.refresh_from_db()
    assert (acme_world.line_1.name, acme_world.line_1.slug) == ("Line One", "line-one")


def test_edit_to_a_taken_slug_changes_nothing(acme_world: Acme, page_client: ClientFor) -> None:
    application_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Two",
        slug="two",
    )
    response = page_client(acme_world.olivia).post(
        "/teams/acme/applications/line-1/edit/", {"name": "Line 1", "slug": "two"}
    )
    assert response.status_code == 400
    assert b"id_slug_error" in response.content
    acme_world.line_1.refresh_from_db()
    assert acme_world.line_1.slug == "line-1"


def test_delete_asks_first_and_deletes_on_post(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.olivia)
    confirm = client.get("/teams/acme/applications/line-1/delete/")
    assert b"Delete \xe2\x80\x9cLine 1\xe2\x80\x9d?" in confirm.content
    assert Application.objects.filter(pk=acme_world.line_1.pk).exists()
    assert client.post("/teams/acme/applications/line-1/delete/").status_code == 302
    assert not Application.objects.filter(pk=acme_world.line_1.pk).exists()


def test_another_teams_application_is_not_found_under_my_team(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    client = page_client(acme_world.olivia)
    for action in ("edit", "delete", "access"):
        assert client.get(f"/teams/acme/applications/hq/{action}/").status_code == 404
        assert client.post(f"/teams/acme/applications/hq/{action}/").status_code == 404
    assert Application.objects.filter(pk=globex_world.hq.pk).exists()


def test_members_cannot_edit_or_delete(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.eddie)
    assert client.post("/teams/acme/applications/line-1/edit/", {"name": "X"}).status_code == 403
    assert client.post("/teams/acme/applications/line-1/delete/").status_code == 403
    acme_world.line_1.refresh_from_db()
    assert acme_world.line_1.name == "Line 1"


def test_no_access_override_hides_the_application(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.olivia)
    eddie = _membership(acme_world, acme_world.eddie)
    response = client.post(
        "/teams/acme/applications/line-1/access/",
        {"action": "set", "membership": eddie.pk, "role": "none"},
    )
    assert response.status_code == 302
    assert ApplicationRoleOverride.objects.get(membership=eddie).role == "none"
    eddie_client = page_client(acme_world.eddie)
    assert b"Line 1" not in eddie_client.get("/teams/acme/applications/").content
    assert eddie_client.get("/teams/acme/applications/line-1/audit/").status_code == 404
    page = client.get("/teams/acme/applications/line-1/access/")
    assert b"no access" in page.content
    client.post(
        "/teams/acme/applications/line-1/access/", {"action": "remove", "membership": eddie.pk}
    )
    assert not ApplicationRoleOverride.objects.filter(membership=eddie).exists()


def test_override_for_a_foreign_member_is_refused(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    oscar = Membership.objects.get(team=globex_world.team, user=globex_world.oscar)
    response = page_client(acme_world.olivia).post(
        "/teams/acme/applications/line-1/access/",
        {"action": "set", "membership": oscar.pk, "role": "viewer"},
    )
    assert response.status_code == 400
    assert b"id_membership_error" in response.content
    assert not ApplicationRoleOverride.objects.exists()


def test_members_may_read_overrides_but_not_change_them(
    acme_world: Acme, page_client: ClientFor
) -> None:
    vera = _membership(acme_world, acme_world.vera)
    application_override_set(
        principal=Principal.for_user(acme_world.olivia),
        membership=vera,
        application=acme_world.line_1,
        role="member",
    )
    client = page_client(acme_world.eddie)
    page = client.get("/teams/acme/applications/line-1/access/")
    assert page.status_code == 200
    assert b"Set a member" not in page.content
    response = client.post(
        "/teams/acme/applications/line-1/access/",
        {"action": "set", "membership": vera.pk, "role": "none"},
    )
    assert response.status_code == 403
    assert ApplicationRoleOverride.objects.get(membership=vera).role == "member"
