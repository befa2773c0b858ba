"""Personal access tokens: shown once, hashed, prefixed, expiring, revocable, scoped, and never
more powerful than their user (re-evaluated on every request)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import PersonalAccessToken
from apps.accounts.principal import Principal
from apps.accounts.services import token_create, token_revoke
from apps.core.errors import PermissionDenied, ValidationError
from apps.teams.models import Membership, Team
from apps.teams.services import member_role_change
from tests.conftest import Acme, Globex

AuditLog = Callable[[Team | int | None], list[str]]


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_create_shows_the_secret_once_and_stores_only_its_hash(
    acme_world: Acme, olivia_api: APIClient, audit_log: AuditLog
) -> None:
    response = olivia_api.post("/api/v1/tokens/", {"name": "ci", "teams": ["acme"]}, format="json")
    assert response.status_code == 201, response.content
    secret = response.json()["token"]
    assert secret.startswith("mfp_")
    assert len(secret) >= 40
    stored = PersonalAccessToken.objects.get()
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(list(PersonalAccessToken.objects.values()))
    listed = olivia_api.get("/api/v1/tokens/").json()["results"]
    assert listed[0]["prefix"] == secret[:10]
    assert "token" not in listed[0]
    assert listed[0]["teams"] == ["acme"]
    assert listed[0]["all_teams"] is False
    assert audit_log(None)[-1] == "account.token.created"
    from apps.audit.models import AuditEvent

    assert secret not in str(list(AuditEvent.objects.values()))


def test_token_authenticates_and_records_last_use(acme_world: Acme) -> None:
    created = token_create(principal=Principal.for_user(acme_world.eddie), name="cli")
    response = bearer(created.secret).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["email"] == "eddie@acme.test"
    created.token.refresh_from_db()
    assert created.token.last_used_at is not None


@pytest.mark.parametrize(
    "header",
    [
        "Bearer mfp_wrong",
        "Bearer nope",
        "Bearer",
        "Bearer a b",
        "Bearer mfp_\u00e9",
    ],
)
def test_bad_tokens_are_401(db: Any, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_expired_and_revoked_tokens_are_401(acme_world: Acme, audit_log: AuditLog) -> None:
    expired = token_create(principal=Principal.for_user(acme_world.eddie), name="old")
    PersonalAccessToken.objects.filter(pk=expired.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert bearer(expired.secret).get("/api/v1/me/").status_code == 401
    live = token_create(principal=Principal.for_user(acme_world.eddie), name="live")
    client = bearer(live.secret)
    assert client.get("/api/v1/teams/acme/").status_code == 200
    token_revoke(principal=Principal.for_user(acme_world.eddie), token=live.token)
    assert client.get("/api/v1/teams/acme/").status_code == 401
    assert audit_log(None)[-1] == "account.token.revoked"


def test_revoke_over_the_api_and_not_someone_elses(
    acme_world: Acme, eddie_api: APIClient, vera_api: APIClient
) -> None:
    created = token_create(principal=Principal.for_user(acme_world.eddie), name="cli")
    assert vera_api.delete(f"/api/v1/tokens/{created.token.pk}/").status_code == 404
    created.token.refresh_from_db()
    assert created.token.revoked_at is None
    assert eddie_api.delete(f"/api/v1/tokens/{created.token.pk}/").status_code == 204
    again = eddie_api.delete(f"/api/v1/tokens/{created.token.pk}/")
    assert again.status_code == 409


def test_scope_above_the_user_is_refused(
    acme_world: Acme, globex_world: Globex, olivia_api: APIClient
) -> None:
    response = olivia_api.post(
        "/api/v1/tokens/", {"name": "x", "teams": ["acme", "globex"]}, format="json"
    )
    assert response.status_code == 400
    assert "globex" in response.json()["error"]["fields"]["teams"][0]
    assert not PersonalAccessToken.objects.exists()
    with pytest.raises(ValidationError):
        token_create(
            principal=Principal.for_user(acme_world.olivia), name="x", team_slugs=["no-such-team"]
        )
    with pytest.raises(ValidationError):
        token_create(principal=Principal.for_user(acme_world.olivia), name="x", team_slugs=[])
    assert not PersonalAccessToken.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x", "expires_in_days": 0},
        {"name": "x", "expires_in_days": 4000},
        {"name": "x", "teams": "acme"},
    ],
)
def test_bad_token_requests(acme_world: Acme, olivia_api: APIClient, body: dict[str, Any]) -> None:
    assert olivia_api.post("/api/v1/tokens/", body, format="json").status_code == 400
    assert not PersonalAccessToken.objects.exists()


def test_tokens_cannot_mint_tokens(acme_world: Acme) -> None:
    created = token_create(principal=Principal.for_user(acme_world.olivia), name="cli")
    response = bearer(created.secret).post("/api/v1/tokens/", {"name": "child"}, format="json")
    assert response.status_code == 403
    with pytest.raises(PermissionDenied):
        token_create(principal=Principal.for_token(created.token), name="child")
    assert PersonalAccessToken.objects.count() == 1


def test_token_follows_the_users_current_role(acme_world: Acme) -> None:
    """Effective rights = role ∩ scope, evaluated per request: a demotion applies at once."""
    olivia, eddie = acme_world.olivia, acme_world.eddie
    member_role_change(
        principal=Principal.for_user(olivia),
        membership=Membership.objects.get(user=eddie, team__slug="acme"),
        role="owner",
    )
    created = token_create(principal=Principal.for_user(eddie), name="cli")
    client = bearer(created.secret)
    assert (
        client.patch("/api/v1/teams/acme/", {"name": "By Eddie"}, format="json").status_code == 200
    )
    member_role_change(
        principal=Principal.for_user(olivia),
        membership=Membership.objects.get(user=eddie, team__slug="acme"),
        role="viewer",
    )
    assert client.patch("/api/v1/teams/acme/", {"name": "Again"}, format="json").status_code == 403
    Membership.objects.filter(user=eddie).delete()
    assert client.get("/api/v1/teams/acme/").status_code == 404
    assert Team.objects.get(slug="acme").name == "By Eddie"


def test_disabled_user_tokens_stop_working(acme_world: Acme) -> None:
    created = token_create(principal=Principal.for_user(acme_world.eddie), name="cli")
    acme_world.eddie.is_active = False
    acme_world.eddie.save()
    assert bearer(created.secret).get("/api/v1/me/").status_code == 401


def test_team_limited_token_lists_only_its_teams(
    acme_world: Acme, globex_world: Globex, token_client: Callable[..., APIClient]
) -> None:
    from tests.conftest import add_member

    add_member(globex_world.team, globex_world.oscar, acme_world.olivia, "viewer")
    client = token_client(acme_world.olivia, teams=["globex"])
    slugs = [team["slug"] for team in client.get("/api/v1/teams/").json()["results"]]
    assert slugs == ["globex"]
    assert client.get("/api/v1/teams/acme/").status_code == 404


def test_read_only_token_cannot_create_teams_or_revoke(
    acme_world: Acme, token_client: Callable[..., APIClient]
) -> None:
    client = token_client(acme_world.olivia, read_only=True)
    assert (
        client.post("/api/v1/teams/", {"name": "N", "slug": "n"}, format="json").status_code == 403
    )
    token_id = PersonalAccessToken.objects.get().pk
    assert client.delete(f"/api/v1/tokens/{token_id}/").status_code == 403
    assert not Team.objects.filter(slug="n").exists()
    assert PersonalAccessToken.objects.get().revoked_at is None
