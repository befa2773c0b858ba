"""Shared personas (STYLE rule 10), built through the real services.

Team ``acme`` (application ``line-1``): ``olivia_owner`` (owner), ``eddie_editor`` (member),
``vera_viewer`` (viewer), ``dana_dashboard`` (dashboard). Team ``globex`` (application ``hq``):
``oscar_outsider`` (owner). ``*_api`` fixtures are API clients signed in (session) as each;
``token_client`` makes a client that authenticates with a real personal access token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.accounts.services import token_create, user_create
from apps.core.realtime import flush_pending
from apps.teams.models import Application, Team
from apps.teams.services import (
    application_create,
    invitation_accept,
    invitation_create,
    team_create,
)

PASSWORD = "correct-Horse-battery-9"


@pytest.fixture(autouse=True)
def _fresh_throttle_counters() -> None:
    """Every test starts with no sign-in/token failures counted (all tests share 127.0.0.1)."""
    from django.core.cache import cache

    cache.clear()


def make_user(email: str, full_name: str = "") -> User:
    return user_create(email=email, password=PASSWORD, full_name=full_name)


def add_member(team: Team, owner: User, user: User, role: str) -> None:
    """Join ``user`` to ``team`` the way people do: invitation, then accept."""
    created = invitation_create(
        principal=Principal.for_user(owner), team=team, email=user.email, role=role
    )
    invitation_accept(principal=Principal.for_user(user), invitation=created.invitation)


@pytest.fixture(autouse=True)
def _realtime_sent_before_the_next_test() -> Any:
    # Group sends leave on a background thread after commit; one test's events must not reach
    # the next test's sockets (team ids repeat across flushed test databases).
    yield
    flush_pending()


@dataclass
class Acme:
    team: Team
    line_1: Application
    olivia: User
    eddie: User
    vera: User
    dana: User


@dataclass
class Globex:
    team: Team
    hq: Application
    oscar: User


@pytest.fixture
def acme_world(db: Any) -> Acme:
    olivia = make_user("olivia@acme.test", "Olivia Owner")
    eddie = make_user("eddie@acme.test", "Eddie Editor")
    vera = make_user("vera@acme.test", "Vera Viewer")
    dana = make_user("dana@acme.test", "Dana Dashboard")
    team = team_create(principal=Principal.for_user(olivia), name="Acme Plant", slug="acme")
    line_1 = application_create(
        principal=Principal.for_user(olivia), team=team, name="Line 1", slug="line-1"
    )
    add_member(team, olivia, eddie, "member")
    add_member(team, olivia, vera, "viewer")
    add_member(team, olivia, dana, "dashboard")
    return Acme(team=team, line_1=line_1, olivia=olivia, eddie=eddie, vera=vera, dana=dana)


@pytest.fixture
def globex_world(db: Any) -> Globex:
    oscar = make_user("oscar@globex.test", "Oscar Outsider")
    team = team_create(principal=Principal.for_user(oscar), name="Globex", slug="globex")
    hq = application_create(principal=Principal.for_user(oscar), team=team, name="HQ", slug="hq")
    return Globex(team=team, hq=hq, oscar=oscar)


@pytest.fixture
def acme(acme_world: Acme) -> Team:
    return acme_world.team


@pytest.fixture
def line_1(acme_world: Acme) -> Application:
    return acme_world.line_1


@pytest.fixture
def globex(globex_world: Globex) -> Team:
    return globex_world.team


@pytest.fixture
def olivia_owner(acme_world: Acme) -> User:
    return acme_world.olivia


@pytest.fixture
def eddie_editor(acme_world: Acme) -> User:
    return acme_world.eddie


@pytest.fixture
def vera_viewer(acme_world: Acme) -> User:
    return acme_world.vera


@pytest.fixture
def dana_dashboard(acme_world: Acme) -> User:
    return acme_world.dana


@pytest.fixture
def oscar_outsider(globex_world: Globex) -> User:
    return globex_world.oscar


def session_client(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def client_for() -> Callable[[User | None], APIClient]:
    """A session-authenticated API client for any user (None: anonymous)."""
    return session_client


@pytest.fixture
def olivia_api(olivia_owner: User) -> APIClient:
    return session_client(olivia_owner)


@pytest.fixture
def eddie_api(eddie_editor: User) -> APIClient:
    return session_client(eddie_editor)


@pytest.fixture
def vera_api(vera_viewer: User) -> APIClient:
    return session_client(vera_viewer)


@pytest.fixture
def dana_api(dana_dashboard: User) -> APIClient:
    return session_client(dana_dashboard)


@pytest.fixture
def oscar_api(oscar_outsider: User) -> APIClient:
    return session_client(oscar_outsider)


@pytest.fixture
def token_client(db: Any) -> Callable[..., APIClient]:
    """``token_client(user, read_only=False, teams=None)``: a client using a real token."""

    def make(user: User, *, read_only: bool = False, teams: list[str] | None = None) -> APIClient:
        created = token_create(
            principal=Principal.for_user(user),
            name="test token",
            read_only=read_only,
            team_slugs=teams,
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret}")
        return client

    return make


@pytest.fixture
def audit_log(db: Any) -> Callable[[Team | int | None], list[str]]:
    """``audit_log(team)``: the team's audit event names, oldest first (None: platform chain;
    an int: the id of a team that no longer exists)."""
    from apps.audit.models import AuditEvent

    def names(team: Team | int | None) -> list[str]:
        key = 0 if team is None else team if isinstance(team, int) else team.pk
        return list(
            AuditEvent.objects.filter(team_key=key).order_by("id").values_list("event", flat=True)
        )

    return names


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """Before a test's fixtures are torn down (a transactional test's database is flushed with
    TRUNCATE), let this process's audit sealer finish: on PostgreSQL it seals after each commit
    in a background thread, and a seal still reading the audit tables deadlocked the flush."""
    from apps.audit.sealing import audit_sealer_wait_idle

    audit_sealer_wait_idle(10.0)
    return (yield)
