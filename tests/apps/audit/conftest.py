"""Fixtures of the audit tests: real users and teams made through the domain services."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import close_old_connections, connection

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.accounts.services import user_create
from apps.audit.sealing import audit_seal_pending
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


class ChainOnlyTeam:
    """A team as the chain sees it (id and slug): for chains no real team needs to back."""

    def __init__(self, pk: int, slug: str) -> None:
        self.pk = pk
        self.slug = slug


def run_concurrently(
    workers: int, work: Callable[[int], None]
) -> tuple[list[BaseException], float]:
    """Run ``work(index)`` in ``workers`` threads released together, each with its own
    database connection; return the errors raised and the wall time in seconds."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers)

    def worker(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as error:
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors, time.perf_counter() - started


def seal_now() -> None:
    """Seal what is pending, as the sealer would right after commit.

    On PostgreSQL rows are appended unsealed and sealed after commit, which a test wrapped in
    one transaction never reaches; on SQLite they are sealed already and this finds nothing.
    """
    audit_seal_pending(wait=True)


def join(team: Team, owner: User, email: str, role: str) -> User:
    """A real member: invited by the owner, accepted by the invitee."""
    from apps.teams.services import invitation_accept, invitation_create

    user = user_create(email=email, password="a-Long-passphrase-42")
    invitation = invitation_create(
        principal=Principal.for_user(owner), team=team, email=email, role=role
    ).invitation
    invitation_accept(principal=Principal.for_user(user), invitation=invitation)
    return user


@pytest.fixture
def udp_listener() -> Iterator[socket.socket]:
    """A real syslog collector on loopback (UDP)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()
