"""RELIABILITY family 1: every URL pattern, every method, as another team's user.

The enumerator walks the whole URL configuration. Each pattern either gets sample kwargs that
point at team acme's objects (and is then called with GET/POST/PUT/PATCH/DELETE by
``oscar_outsider`` of globex), or is listed in ``NOT_TEAM_DATA`` with the reason. A new pattern
with an unknown kwarg, or one that is neither sampled nor listed, fails this test. Every answer
must be 403/404 (405 where a method does not exist) and team acme must be unchanged.
"""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from apps.accounts.models import PersonalAccessToken
from apps.accounts.principal import Principal
from apps.accounts.services import token_create
from apps.audit.models import AuditEvent
from apps.rbac.services import custom_role_create
from apps.teams.models import Membership
from apps.teams.services import invitation_create
from tests.apps.teams.test_api_matrix import team_state
from tests.conftest import Acme, Globex

# Patterns that hold no team data of their own; anything else must be probed.
NOT_TEAM_DATA = {
    "healthz": "liveness probe",
    "api/v1/me/": "the caller's own account",
    "api/v1/me/password/": "the caller's own password",
    "api/v1/tokens/": "the caller's own tokens",
    "api/v1/permissions/": "the static permission table",
    "api/v1/teams/": "lists only the caller's teams; POST creates a new team",
    "api/v1/schema/": "OpenAPI document",
    "api/v1/docs/": "API docs page",
    "api/v1/redoc/": "API docs page",
    "": "home page (the caller's teams)",
    "create-team/": "creates a new team",
    "accounts/login/": "login form",
    "accounts/logout/": "logout",
    "accounts/password/change/": "own password",
    "accounts/password/change/done/": "own password",
    "accounts/tokens/": "own tokens",
    "accounts/password/reset/": "password reset by email",
    "accounts/password/reset/sent/": "password reset by email",
    "accounts/password/reset/<uidb64>/<token>/": "password reset link (signed per user)",
    "accounts/password/reset/complete/": "password reset by email",
}
METHODS = ("get", "post", "put", "patch", "delete")
REJECTED = {403, 404, 405}


def all_patterns() -> list[str]:
    found: list[str] = []

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                found.append(prefix + str(pattern.pattern))

    walk(get_resolver().url_patterns, "")
    return found


def samples(world: Acme) -> dict[str, str]:
    """One acme object for every kwarg name a route may use."""
    team, olivia = world.team, world.olivia
    invitation = invitation_create(
        principal=Principal.for_user(olivia), team=team, email="probe@example.test", role="viewer"
    )
    role = custom_role_create(
        principal=Principal.for_user(olivia), team=team, name="Probe", permissions=["flow:read"]
    )
    token_create(principal=Principal.for_user(olivia), name="probe")
    vera = Membership.objects.get(team=team, user=world.vera)
    event = AuditEvent.objects.filter(team_key=team.pk).order_by("id").first()
    assert event is not None
    return {
        "team_slug": team.slug,
        "application_slug": world.line_1.slug,
        "app_slug": world.line_1.slug,
        "membership_id": str(vera.pk),
        "invitation_id": str(invitation.invitation.pk),
        "role_id": str(role.pk),
        "event_id": str(event.pk),
        "token_id": str(PersonalAccessToken.objects.get(user=olivia).pk),
        "token": invitation.secret,
        # platform admin routes: another team's user is no platform admin either
        "user_id": str(world.vera.pk),
    }


def fill(pattern: str, values: dict[str, str]) -> tuple[str, list[str]]:
    import re

    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in values:
            missing.append(name)
            return "x"
        return values[name]

    path = re.sub(r"<(?:(\w+):)?(\w+)>", replace, pattern)
    return "/" + path, missing


def test_every_route_rejects_another_teams_user(acme_world: Acme, globex_world: Globex) -> None:
    values = samples(acme_world)
    client = Client()
    client.force_login(globex_world.oscar)
    before = team_state(acme_world.team.pk)
    acme_events = AuditEvent.objects.filter(team_key=acme_world.team.pk).count()

    probed, leaks, unsampled = 0, [], []
    for pattern in all_patterns():
        if pattern in NOT_TEAM_DATA:
            continue
        path, missing = fill(pattern, values)
        if missing:
            unsampled.append(f"{pattern}: no sample for {missing}")
            continue
        probed += 1
        for method in METHODS:
            response: Any = getattr(client, method)(path, {}, content_type="application/json")
            if response.status_code not in REJECTED:
                leaks.append(f"{method.upper()} {path} -> {response.status_code}")
    total = len([p for p in all_patterns() if p not in NOT_TEAM_DATA])
    print(f"\nenumerator: probed {probed}/{total} team-data patterns x {len(METHODS)} methods")
    assert not unsampled, unsampled
    assert not leaks, leaks
    assert team_state(acme_world.team.pk) == before
    assert AuditEvent.objects.filter(team_key=acme_world.team.pk).count() == acme_events
    assert probed == total
