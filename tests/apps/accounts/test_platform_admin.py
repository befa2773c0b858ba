"""Platform admins (``User.is_platform_admin``): users and teams with counts, deactivation.

``paula_platform`` is a platform admin in no team. She lists and switches accounts; she does not
see inside teams (tenancy is strict). Everyone else is refused with nothing changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.accounts.models import PersonalAccessToken, User
from apps.accounts.principal import Principal
from apps.accounts.services import token_create, user_create, user_deactivate, user_reactivate
from apps.audit.models import AuditEvent
from apps.core.errors import Conflict, PermissionDenied
from tests.conftest import PASSWORD, Acme, Globex, make_user

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], APIClient]


@pytest.fixture
def paula_platform(db: Any) -> User:
    return user_create(
        email="paula@platform.test",
        password=PASSWORD,
        full_name="Paula Platform",
        is_platform_admin=True,
    )


def _platform_events() -> list[str]:
    return list(
        AuditEvent.objects.filter(team_key=0).order_by("id").values_list("event", flat=True)
    )


def _state() -> list[tuple[Any, ...]]:
    return list(User.objects.order_by("pk").values_list("pk", "is_active", "password"))


# --- reads ---------------------------------------------------------------------------------


def test_user_list_searches_filters_and_counts_teams(
    acme_world: Acme, globex_world: Globex, paula_platform: User, client_for: ClientFor
) -> None:
    api = client_for(paula_platform)
    body = api.get("/api/v1/platform/users/").json()
    rows = {row["email"]: row for row in body["results"]}
    assert body["count"] == 6, sorted(rows)
    assert rows["olivia@acme.test"]["teams_count"] == 1
    assert rows["paula@platform.test"]["teams_count"] == 0
    assert rows["paula@platform.test"]["is_platform_admin"] is True
    assert "password" not in rows["olivia@acme.test"]

    found = api.get("/api/v1/platform/users/", {"q": "Vera V"}).json()
    assert [row["email"] for row in found["results"]] == ["vera@acme.test"]
    user_deactivate(principal=Principal.for_user(paula_platform), user=acme_world.dana)
    disabled = api.get("/api/v1/platform/users/", {"status": "disabled"}).json()
    assert [row["email"] for row in disabled["results"]] == ["dana@acme.test"]
    active = api.get("/api/v1/platform/users/", {"status": "active"}).json()
    assert active["count"] == 5
    bad = api.get("/api/v1/platform/users/", {"status": "sleeping"})
    assert bad.status_code == 400
    assert "status" in bad.json()["error"]["fields"]


def test_team_list_counts_members_and_applications(
    acme_world: Acme, globex_world: Globex, paula_platform: User, client_for: ClientFor
) -> None:
    body = client_for(paula_platform).get("/api/v1/platform/teams/").json()
    rows = {row["slug"]: row for row in body["results"]}
    assert rows["acme"]["members_count"] == 4
    assert rows["acme"]["applications_count"] == 1
    assert rows["globex"]["members_count"] == 1
    assert set(rows["acme"]) == {
        "id",
        "name",
        "slug",
        "members_count",
        "applications_count",
        "created_at",
    }
    one = client_for(paula_platform).get("/api/v1/platform/teams/", {"q": "glob"}).json()
    assert [row["slug"] for row in one["results"]] == ["globex"]


def test_list_pages_use_a_constant_number_of_queries(
    acme_world: Acme, paula_platform: User
) -> None:
    client = Client()
    client.force_login(paula_platform)

    def count(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    count("/platform/users/")  # the first read of the installation settings creates their row
    users_before, teams_before = count("/platform/users/"), count("/platform/teams/")
    for n in range(15):
        make_user(f"extra{n}@acme.test")
    assert count("/platform/users/") == users_before
    assert count("/platform/teams/") == teams_before
    print(f"platform list pages: users {users_before} queries, teams {teams_before} queries")


def test_platform_admin_gets_no_team_data(acme_world: Acme, paula_platform: User) -> None:
    api = APIClient()
    api.force_login(paula_platform)
    for url in (
        "/api/v1/teams/acme/",
        "/api/v1/teams/acme/members/",
        "/api/v1/teams/acme/audit-events/",
        "/api/v1/teams/acme/applications/line-1/",
    ):
        assert api.get(url).status_code == 404, url
    assert api.get("/api/v1/teams/").json()["results"] == []
    page = Client()
    page.force_login(paula_platform)
    assert page.get("/teams/acme/").status_code == 404
    assert page.get("/teams/acme/audit/").status_code == 404


# --- denial --------------------------------------------------------------------------------


def test_non_admins_are_refused_with_nothing_changed(
    acme_world: Acme, paula_platform: User, client_for: ClientFor
) -> None:
    vera = acme_world.vera
    before, events = _state(), AuditEvent.objects.count()
    for person in (acme_world.olivia, acme_world.eddie, vera):
        api = client_for(person)
        assert api.get("/api/v1/platform/users/").status_code == 403
        assert api.get("/api/v1/platform/teams/").status_code == 403
        assert api.get(f"/api/v1/platform/users/{vera.pk}/").status_code == 403
        assert api.post(f"/api/v1/platform/users/{vera.pk}/deactivate/").status_code == 403
        page = Client()
        page.force_login(person)
        assert page.get("/platform/users/").status_code == 403
        assert page.post(f"/platform/users/{vera.pk}/deactivate/").status_code == 403
    assert APIClient().get("/api/v1/platform/users/").status_code in {401, 403}
    assert Client().get("/platform/users/").status_code == 302  # to the login page
    with pytest.raises(PermissionDenied):
        user_deactivate(principal=Principal.for_user(acme_world.olivia), user=vera)
    assert _state() == before
    assert AuditEvent.objects.count() == events


def test_tokens_of_a_platform_admin_are_limited_by_their_scope(
    acme_world: Acme, paula_platform: User, token_client: Callable[..., APIClient]
) -> None:
    vera = acme_world.vera
    reader = token_client(paula_platform, read_only=True)
    assert reader.get("/api/v1/platform/users/").status_code == 200
    assert reader.post(f"/api/v1/platform/users/{vera.pk}/deactivate/").status_code == 403
    full = token_client(paula_platform)
    assert full.post(f"/api/v1/platform/users/{vera.pk}/deactivate/").status_code == 200
    assert not User.objects.get(pk=vera.pk).is_active


def test_bad_targets_get_clear_errors(
    acme_world: Acme, paula_platform: User, client_for: ClientFor
) -> None:
    api = client_for(paula_platform)
    assert api.get("/api/v1/platform/users/987654/").status_code == 404
    own = api.post(f"/api/v1/platform/users/{paula_platform.pk}/deactivate/")
    assert own.status_code == 409
    assert "your own account" in own.json()["error"]["message"]
    again = api.post(f"/api/v1/platform/users/{acme_world.vera.pk}/reactivate/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_active"
    assert User.objects.get(pk=paula_platform.pk).is_active


# --- deactivation --------------------------------------------------------------------------


def test_deactivation_ends_sessions_stops_tokens_and_is_audited(
    acme_world: Acme, paula_platform: User, client_for: ClientFor
) -> None:
    vera = acme_world.vera
    browser = Client()
    browser.force_login(vera)
    assert browser.get("/teams/acme/").status_code == 200
    secret = token_create(principal=Principal.for_user(vera), name="grafana").secret
    token_api = APIClient()
    token_api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert token_api.get("/api/v1/me/").status_code == 200

    started = time.monotonic()
    response = client_for(paula_platform).post(f"/api/v1/platform/users/{vera.pk}/deactivate/")
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert token_api.get("/api/v1/me/").status_code == 401
    assert browser.get("/teams/acme/").status_code == 302
    took = time.monotonic() - started
    print(f"deactivate -> token refused and session gone in {took * 1000:.0f} ms")
    assert not [
        s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(vera.pk)
    ]
    assert not Client().login(email=vera.email, password=PASSWORD)
    # Kept, not revoked: a reactivation restores the account as it was.
    assert PersonalAccessToken.objects.get(user=vera).revoked_at is None
    row = AuditEvent.objects.filter(team_key=0).order_by("-id").first()
    assert row is not None
    assert row.event == "platform.user.deactivated"
    assert row.target_id == str(vera.pk)
    assert row.actor_id == str(paula_platform.pk)
    assert row.before == {"is_active": True}
    assert row.after == {"is_active": False, "logins_ended": 1, "teams": 1}

    back = client_for(paula_platform).post(f"/api/v1/platform/users/{vera.pk}/reactivate/")
    assert back.status_code == 200
    assert back.json()["is_active"] is True
    assert token_api.get("/api/v1/me/").status_code == 200
    assert Client().login(email=vera.email, password=PASSWORD)
    assert _platform_events()[-2:] == ["platform.user.deactivated", "platform.user.reactivated"]


def test_deactivation_through_the_pages(acme_world: Acme, paula_platform: User) -> None:
    vera = acme_world.vera
    page = Client()
    page.force_login(paula_platform)
    listing = page.get("/platform/users/", {"q": "vera"})
    assert listing.status_code == 200
    assert b"vera@acme.test" in listing.content
    assert b"olivia@acme.test" not in listing.content
    confirm = page.get(f"/platform/users/{vera.pk}/deactivate/")
    assert b"Deactivate vera@acme.test?" in confirm.content
    done = page.post(f"/platform/users/{vera.pk}/deactivate/", follow=True)
    assert b"vera@acme.test deactivated." in done.content
    assert not User.objects.get(pk=vera.pk).is_active
    again = page.post(f"/platform/users/{vera.pk}/deactivate/", follow=True)
    assert b"already deactivated" in again.content
    page.post(f"/platform/users/{vera.pk}/reactivate/")
    assert User.objects.get(pk=vera.pk).is_active
    teams = page.get("/platform/teams/")
    assert b"Acme Plant" in teams.content
    assert page.get("/platform/users/987654/deactivate/").status_code == 404


def test_service_refuses_self_and_repeated_switches(acme_world: Acme, paula_platform: User) -> None:
    with pytest.raises(Conflict):
        user_deactivate(principal=Principal.for_user(paula_platform), user=paula_platform)
    with pytest.raises(Conflict):
        user_reactivate(principal=Principal.for_user(paula_platform), user=acme_world.vera)
    assert _platform_events().count("platform.user.deactivated") == 0


@pytest.mark.django_db(transaction=True)
async def test_open_websockets_of_a_deactivated_user_close() -> None:
    from tests.config.test_consumers import closed_with, connect

    @database_sync_to_async
    def setup() -> tuple[User, User]:
        from apps.teams.services import team_create

        paula = user_create(email="p@platform.test", password=PASSWORD, is_platform_admin=True)
        vera = user_create(email="v@acme.test", password=PASSWORD)
        team_create(principal=Principal.for_user(vera), name="Acme", slug="acme")
        team_create(principal=Principal.for_user(vera), name="Acme Two", slug="acme-two")
        return paula, vera

    paula, vera = await setup()
    first, ok_first, _ = await connect("/ws/teams/acme/events/", vera)
    second, ok_second, _ = await connect("/ws/teams/acme-two/events/", vera)
    assert ok_first
    assert ok_second

    @database_sync_to_async
    def deactivate() -> None:
        with transaction.atomic():
            user_deactivate(principal=Principal.for_user(paula), user=vera)

    started = time.monotonic()
    await deactivate()
    codes = [(await closed_with(socket, 5))[0] for socket in (first, second)]
    print(f"deactivate -> 2 sockets closed in {(time.monotonic() - started) * 1000:.0f} ms")
    assert codes == [4403, 4403]


def test_confirmation_warns_before_switching_off_a_teams_only_owner(
    acme_world: Acme, paula_platform: User
) -> None:
    page = Client()
    page.force_login(paula_platform)
    olivia = page.get(f"/platform/users/{acme_world.olivia.pk}/deactivate/")
    assert b"is the only owner of Acme Plant" in olivia.content
    vera = page.get(f"/platform/users/{acme_world.vera.pk}/deactivate/")
    assert b"only owner" not in vera.content
    refused = Client()
    refused.force_login(acme_world.olivia)
    denied = refused.get("/platform/teams/")
    assert denied.status_code == 403
    assert b"make you a platform admin" in denied.content
