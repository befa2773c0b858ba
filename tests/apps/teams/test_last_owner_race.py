"""The last-owner rule holds under concurrency: two owners demoting each other at once.

Needs a server database (row locks); SQLite serialises writers anyway and is skipped.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, connections

from apps.accounts.principal import Principal
from apps.core.errors import Conflict
from apps.rbac.permissions import Role
from apps.teams.models import Membership
from apps.teams.services import member_leave, member_role_change, team_create
from tests.conftest import make_user


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs row locks (PostgreSQL)")
@pytest.mark.parametrize("attempt", range(5))
def test_two_owners_leaving_at_once_leave_one_owner(transactional_db: Any, attempt: int) -> None:
    ann, bob = make_user(f"ann{attempt}@example.test"), make_user(f"bob{attempt}@example.test")
    team = team_create(principal=Principal.for_user(ann), name="Race", slug=f"race-{attempt}")
    Membership.objects.create(team=team, user=bob, role=Role.MEMBER)
    member_role_change(
        principal=Principal.for_user(ann),
        membership=Membership.objects.get(team=team, user=bob),
        role=Role.OWNER,
    )
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def leave(user: Any) -> None:
        try:
            barrier.wait()
            member_leave(principal=Principal.for_user(user), team=team)
            outcomes.append("left")
        except Conflict:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=leave, args=(user,)) for user in (ann, bob)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["left", "refused"]
    assert Membership.objects.filter(team=team, role=Role.OWNER).count() == 1
