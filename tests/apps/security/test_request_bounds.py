"""Finding 5: list limits, JSON depth and body size are bounded; every refusal is the JSON
error body (400 or 413), never a 500, never every row."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.teams.models import Team
from tests.conftest import Acme

LISTS = [
    "/api/v1/teams/",
    "/api/v1/teams/acme/applications/",
    "/api/v1/teams/acme/applications/line-1/overrides/",
    "/api/v1/teams/acme/members/",
    "/api/v1/teams/acme/invitations/",
    "/api/v1/teams/acme/custom-roles/",
    "/api/v1/teams/acme/audit-events/",
    "/api/v1/tokens/",
    "/api/v1/platform/users/",
    "/api/v1/platform/teams/",
]
HUGE = "99999999999999999999999"


@pytest.fixture
def owner(acme_world: Acme) -> Client:
    User.objects.filter(pk=acme_world.olivia.pk).update(is_platform_admin=True)
    client = Client()
    client.force_login(acme_world.olivia)
    return client


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": HUGE}, "limit"),
        ({"limit": "1000000000"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": HUGE}, "offset"),
        ({"offset": "-5"}, "offset"),
    ],
)
def test_out_of_bounds_pagination_is_a_400_error_body(
    owner: Client, url: str, query: dict[str, str], field: str
) -> None:
    response = owner.get(url, query)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]


@pytest.mark.parametrize("url", LISTS)
def test_the_largest_page_is_500(owner: Client, url: str) -> None:
    response = owner.get(url, {"limit": "500", "offset": "0"})
    assert response.status_code == 200
    assert "results" in response.json()


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_json_is_a_400_error_body(owner: Client, depth: int) -> None:
    body = '{"name": "Deep", "slug": "deep", "x": ' + "[" * depth + "]" * depth + "}"
    response = owner.post("/api/v1/teams/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert "nested deeper than 64" in response.json()["error"]["message"]
    assert not Team.objects.filter(slug="deep").exists()


def test_json_at_the_depth_bound_is_accepted(owner: Client) -> None:
    body = '{"name": "Ok", "slug": "ok-team", "x": ' + "[" * 63 + "]" * 63 + "}"
    response = owner.post("/api/v1/teams/", body, content_type="application/json")
    assert response.status_code == 201, response.content


def test_ten_megabyte_body_is_a_json_413(owner: Client) -> None:
    body = '{"name": "' + "x" * (10 * 1024 * 1024) + '", "slug": "big"}'
    response = owner.post("/api/v1/teams/", body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "request_too_large"
    assert not Team.objects.filter(slug="big").exists()


def test_ten_megabyte_form_post_to_a_page_is_a_413(owner: Client) -> None:
    response = owner.post("/teams/create-team/", {"name": "x" * (10 * 1024 * 1024)})
    assert response.status_code == 413


def test_body_without_a_length_is_bounded_by_the_parser(owner: Client) -> None:
    from io import BytesIO

    from django.conf import settings
    from rest_framework.exceptions import APIException

    from apps.core.limits import BoundedJSONParser

    stream = BytesIO(b"[" + b" " * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b"]")
    with pytest.raises(APIException) as refused:
        BoundedJSONParser().parse(stream)
    assert refused.value.status_code == 413
