"""The application page: overview, access and audit tabs; names link to it and truncate."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.teams.models import Membership
from apps.teams.services import application_create, application_override_set
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], Client]


def test_overview_shows_the_application_and_its_tabs(
    acme_world: Acme, page_client: ClientFor
) -> None:
    response = page_client(acme_world.olivia).get("/teams/acme/applications/line-1/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Line 1" in html
    for href in ("/applications/line-1/", "/applications/line-1/access/", "/line-1/audit/"):
        assert (
            f'href="/teams/acme{href}"' in html or f'href="/teams/acme/applications{href}"' in html
        )
    assert 'aria-current="page">Overview' in html
    assert "Your role here" in html


def test_viewer_sees_only_the_tabs_their_role_opens(
    acme_world: Acme, page_client: ClientFor
) -> None:
    html = page_client(acme_world.dana).get("/teams/acme/applications/line-1/").content.decode()
    assert ">Overview<" in html
    assert ">Audit log<" not in html
    assert "/applications/line-1/edit/" not in html


def test_no_access_override_hides_the_application_page(
    acme_world: Acme, page_client: ClientFor
) -> None:
    application_override_set(
        principal=Principal.for_user(acme_world.olivia),
        membership=Membership.objects.get(team=acme_world.team, user=acme_world.eddie),
        application=acme_world.line_1,
        role="none",
    )
    response = page_client(acme_world.eddie).get("/teams/acme/applications/line-1/")
    assert response.status_code == 404


def test_foreign_application_page_is_404(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    client = page_client(acme_world.olivia)
    assert client.get("/teams/globex/applications/hq/").status_code == 404
    assert client.get("/teams/acme/applications/hq/").status_code == 404


def test_access_and_audit_tabs_share_the_header(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.olivia)
    access = client.get("/teams/acme/applications/line-1/access/").content.decode()
    audit = client.get("/teams/acme/applications/line-1/audit/").content.decode()
    assert 'aria-current="page">Access' in access
    assert 'aria-current="page">Audit log' in audit
    assert 'aria-label="Application sections"' in access
    assert 'aria-label="Application sections"' in audit


def test_names_link_to_the_page_and_truncate_with_a_tooltip(
    acme_world: Acme, page_client: ClientFor
) -> None:
    long_name = "Compressor " + "x" * 89
    application_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name=long_name,
        slug="long",
    )
    client = page_client(acme_world.olivia)
    for page in ("/teams/acme/applications/", "/teams/acme/"):
        html = client.get(page).content.decode()
        assert (
            f'class="truncate" href="/teams/acme/applications/long/" title="{long_name}"' in html
        ), page


def test_create_lands_on_the_new_application_page(acme_world: Acme, page_client: ClientFor) -> None:
    response = page_client(acme_world.olivia).post(
        "/teams/acme/applications/new/", {"name": "Press 4", "slug": "press-4"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/teams/acme/applications/press-4/"
