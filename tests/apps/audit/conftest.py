"""Fixtures of the audit tests: real users and teams made through the domain services."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.accounts.services import user_create
from apps.teams.models import Application, Team
from apps.teams.services import application_create, team_create


@pytest.fixture
def auditor(db: Any) -> User:
    return user_create(email="audrey@acme.test", password="a-Long-passphrase-42")


@pytest.fixture
def acme_team(auditor: User) -> Team:
    return team_create(principal=Principal.for_user(auditor), name="Acme", slug="acme-audit")


@pytest.fixture
def globex_team(db: Any) -> Team:
    other = user_create(email="gary@globex.test", password="a-Long-passphrase-42")
    return team_create(principal=Principal.for_user(other), name="Globex", slug="globex-audit")


@pytest.fixture
def acme_app(auditor: User, acme_team: Team) -> Application:
    return application_create(
        principal=Principal.for_user(auditor), team=acme_team, name="Line 1", slug="line-1"
    )


def join(team: Team, owner: User, email: str, role: str) -> User:
    """A real member: invited by the owner, accepted by the invitee."""
    from apps.teams.services import invitation_accept, invitation_create

    user = user_create(email=email, password="a-Long-passphrase-42")
    invitation = invitation_create(
        principal=Principal.for_user(owner), team=team, email=email, role=role
    ).invitation
    invitation_accept(principal=Principal.for_user(user), invitation=invitation)
    return user
