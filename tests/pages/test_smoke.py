"""Every page renders for the people who may see it (a quick net under the detailed tests)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.template.loader import render_to_string
from django.test import Client

from apps.accounts.models import User
from tests.conftest import Acme

pytestmark = pytest.mark.django_db


def test_every_page_renders_for_the_owner(
    acme_world: Acme, page_client: Callable[[User | None], Client]
) -> None:
    client = page_client(acme_world.olivia)
    pages = [
        "/?all=1",
        "/create-team/",
        "/accounts/password/change/",
        "/accounts/tokens/",
        "/teams/acme/",
        "/teams/acme/applications/",
        "/teams/acme/applications/new/",
        "/teams/acme/applications/line-1/",
        "/teams/acme/applications/line-1/edit/",
        "/teams/acme/applications/line-1/delete/",
        "/teams/acme/applications/line-1/access/",
        "/teams/acme/applications/line-1/audit/",
        "/teams/acme/members/",
        "/teams/acme/roles/",
        "/teams/acme/roles/new/",
        "/teams/acme/settings/",
        "/teams/acme/delete/",
        "/teams/acme/leave/",
        "/teams/acme/audit/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert b"<main" in response.content, url


def test_the_500_page_renders_without_a_request_or_a_database() -> None:
    # Django renders 500.html with an empty context when everything else may be broken.
    html = render_to_string("500.html")
    assert "Something went wrong on our side" in html
    assert "/static/css/manifold.css" in html
