"""Custom roles: the built-in table, define, edit, delete."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.rbac.models import CustomRole
from apps.rbac.services import custom_role_create
from apps.teams.models import Membership
from apps.teams.services import member_role_change
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], Client]


def test_roles_page_shows_the_permission_table(acme_world: Acme, page_client: ClientFor) -> None:
    content = page_client(acme_world.eddie).get("/teams/acme/roles/").content.decode()
    assert "Built-in roles" in content
    assert "audit:export" in content
    # Features that do not exist yet are named once, not listed as rows that seem to work.
    assert "flow:deploy" not in content
    assert "Permissions for dashboards, devices, flows, models, pipelines" in content
    assert "New custom role" not in content


def test_viewers_cannot_list_custom_roles(acme_world: Acme, page_client: ClientFor) -> None:
    assert page_client(acme_world.vera).get("/teams/acme/roles/").status_code == 403


def test_owner_defines_a_custom_role(acme_world: Acme, page_client: ClientFor) -> None:
    client = page_client(acme_world.olivia)
    form = client.get("/teams/acme/roles/new/").content.decode()
    assert 'value="flow:deploy"' in form
    assert 'value="member:role"' not in form  # reserved for owners
    response = client.post(
        "/teams/acme/roles/new/",
        {
            "name": "Line operator",
            "description": "Deploys",
            "permissions": ["flow:read", "flow:deploy"],
        },
    )
    assert response.status_code == 302
    role = CustomRole.objects.get(team=acme_world.team, name="Line operator")
    assert sorted(role.permissions) == ["flow:deploy", "flow:read"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "Boss", "permissions": ["member:role"]}, b"id_permissions_error"),
        ({"name": "Nothing"}, b"id_permissions_error"),
        ({"name": "", "permissions": ["flow:read"]}, b"id_name_error"),
        ({"name": "Taken", "permissions": ["flow:read"]}, b"id_name_error"),
    ],
)
def test_bad_custom_roles_are_refused(
    acme_world: Acme, page_client: ClientFor, data: dict[str, object], error: bytes
) -> None:
    custom_role_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Taken",
        permissions=["flow:read"],
    )
    response = page_client(acme_world.olivia).post("/teams/acme/roles/new/", data)
    assert response.status_code == 400
    assert error in response.content
    assert CustomRole.objects.filter(team=acme_world.team).count() == 1


def test_members_cannot_define_roles(acme_world: Acme, page_client: ClientFor) -> None:
    response = page_client(acme_world.eddie).post(
        "/teams/acme/roles/new/", {"name": "Mine", "permissions": ["flow:read"]}
    )
    assert response.status_code == 403
    assert not CustomRole.objects.exists()


def test_edit_a_custom_role(acme_world: Acme, page_client: ClientFor) -> None:
    role = custom_role_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Op",
        permissions=["flow:read"],
    )
    client = page_client(acme_world.olivia)
    assert b'value="Op"' in client.get(f"/teams/acme/roles/{role.pk}/edit/").content
    client.post(
        f"/teams/acme/roles/{role.pk}/edit/", {"name": "Operator", "permissions": ["flow:deploy"]}
    )
    role.refresh_from_db()
    assert (role.name, role.permissions) == ("Operator", ["flow:deploy"])


def test_a_role_in_use_cannot_be_deleted(acme_world: Acme, page_client: ClientFor) -> None:
    role = custom_role_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Op",
        permissions=["flow:read"],
    )
    eddie = Membership.objects.get(team=acme_world.team, user=acme_world.eddie)
    member_role_change(
        principal=Principal.for_user(acme_world.olivia), membership=eddie, custom_role=role
    )
    client = page_client(acme_world.olivia)
    response = client.post(f"/teams/acme/roles/{role.pk}/delete/")
    assert response.status_code == 409
    assert b"still hold" in response.content
    assert CustomRole.objects.filter(pk=role.pk).exists()
    member_role_change(
        principal=Principal.for_user(acme_world.olivia), membership=eddie, custom_role=None
    )
    assert client.post(f"/teams/acme/roles/{role.pk}/delete/").status_code == 302
    assert not CustomRole.objects.filter(pk=role.pk).exists()


def test_another_teams_role_is_not_found(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    role = custom_role_create(
        principal=Principal.for_user(globex_world.oscar),
        team=globex_world.team,
        name="Theirs",
        permissions=["flow:read"],
    )
    client = page_client(acme_world.olivia)
    assert client.get(f"/teams/acme/roles/{role.pk}/edit/").status_code == 404
    assert client.post(f"/teams/acme/roles/{role.pk}/delete/").status_code == 404
    assert CustomRole.objects.filter(pk=role.pk).exists()


def test_custom_roles_list_their_permissions_in_words(
    acme_world: Acme, page_client: ClientFor
) -> None:
    from apps.rbac.permissions import PERMISSIONS

    custom_role_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Auditor",
        permissions=["audit:read", "audit:export"],
    )
    html = page_client(acme_world.olivia).get("/teams/acme/roles/").content.decode()
    custom = html[html.index('id="custom-title"') : html.index('id="matrix-title"')]
    assert f'<li title="audit:export">{PERMISSIONS["audit:export"].description}</li>' in custom
    assert '<code class="badge">audit:export</code>' not in custom
