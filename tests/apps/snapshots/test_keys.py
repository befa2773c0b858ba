"""The platform key and the team keys it seals: AEAD bound to team and purpose, lazy creation
that survives a race, rotation that retires the old key."""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test import override_settings

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.core.errors import PermissionDenied
from apps.snapshots import keys
from apps.snapshots.models import TeamKey
from apps.snapshots.services import team_key_rotate
from apps.teams.models import Team
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db


def test_explicit_platform_key_is_used_and_must_be_32_bytes() -> None:
    raw = bytes(range(32))
    with override_settings(MANIFOLD_KEY_ENCRYPTION_KEY=base64.b64encode(raw).decode()):
        assert keys.platform_key() == raw
    short = base64.b64encode(b"short").decode()
    with (
        override_settings(MANIFOLD_KEY_ENCRYPTION_KEY=short),
        pytest.raises(ImproperlyConfigured, match="32 bytes"),
    ):
        keys.platform_key()
    with (
        override_settings(MANIFOLD_KEY_ENCRYPTION_KEY="not base64!"),
        pytest.raises(ImproperlyConfigured, match="base64"),
    ):
        keys.platform_key()


def test_derived_platform_key_follows_the_secret_key() -> None:
    with override_settings(MANIFOLD_KEY_ENCRYPTION_KEY="", SECRET_KEY="one" * 20):
        first = keys.platform_key()
    with override_settings(MANIFOLD_KEY_ENCRYPTION_KEY="", SECRET_KEY="two" * 20):
        second = keys.platform_key()
    assert len(first) == 32
    assert first != second


def test_sealed_values_open_only_for_the_same_team_and_purpose() -> None:
    key = bytes(32)
    sealed = keys.seal(b"secret", key=key, team_id=7, purpose="data-key")
    assert b"secret" not in sealed
    assert keys.unseal(sealed, key=key, team_id=7, purpose="data-key") == b"secret"
    for team_id, purpose in ((8, "data-key"), (7, "signing-private")):
        with pytest.raises(keys.KeyIntegrityError, match="does not open"):
            keys.unseal(sealed, key=key, team_id=team_id, purpose=purpose)
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(keys.KeyIntegrityError):
        keys.unseal(flipped, key=key, team_id=7, purpose="data-key")
    with pytest.raises(keys.KeyIntegrityError, match="malformed"):
        keys.unseal(b"\x01short", key=key, team_id=7, purpose="data-key")


def test_team_key_is_made_once_and_reused(acme: Team) -> None:
    first = keys.team_key(acme)
    assert keys.team_key(acme).pk == first.pk
    assert TeamKey.objects.filter(team=acme).count() == 1
    assert len(keys.signing_private_key(first)) == 32
    assert len(keys.data_key(first)) == 32
    # The private halves are stored sealed, never in clear.
    assert keys.signing_private_key(first) not in bytes(first.signing_private_sealed)


def test_a_key_row_moved_to_another_team_does_not_open(acme: Team, globex: Team) -> None:
    key = keys.team_key(acme)
    TeamKey.objects.filter(pk=key.pk).update(team=globex)
    key.refresh_from_db()
    with pytest.raises(keys.KeyIntegrityError):
        keys.signing_private_key(key)


def test_rotation_retires_the_old_key_and_is_audited(acme_world: Acme) -> None:
    team = acme_world.team
    old = keys.team_key(team)
    new = team_key_rotate(principal=Principal.for_user(acme_world.olivia), team=team)
    old.refresh_from_db()
    assert old.retired_at is not None
    assert new.retired_at is None
    assert keys.team_key(team).pk == new.pk
    event = AuditEvent.objects.filter(team_key=team.pk, event="team.key.rotated").get()
    assert event.before == {"active": old.key_id}
    assert event.after == {"active": new.key_id, "retired": old.key_id}
    text = repr(event.before) + repr(event.after)
    assert base64.b64encode(keys.signing_private_key(new)).decode() not in text


def test_rotation_by_a_read_only_token_is_refused(acme_world: Acme) -> None:
    from apps.accounts.services import token_create

    token = token_create(
        principal=Principal.for_user(acme_world.olivia), name="ro", read_only=True
    ).token
    before = TeamKey.objects.count()
    with pytest.raises(PermissionDenied, match="Read-only tokens cannot"):
        team_key_rotate(principal=Principal.for_token(token), team=acme_world.team)
    assert TeamKey.objects.count() == before


@pytest.mark.parametrize("attempt", range(3))
def test_first_key_race_makes_exactly_one_key(
    transactional_db: Any, globex_world: Globex, attempt: int
) -> None:
    team = globex_world.team
    barrier = threading.Barrier(4)
    made: list[int] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            barrier.wait()
            made.append(keys.team_key(team).pk)
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(made) == 4
    assert len(set(made)) == 1
    assert TeamKey.objects.filter(team=team, retired_at__isnull=True).count() == 1
