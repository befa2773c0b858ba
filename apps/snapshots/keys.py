"""The platform key, and the team keys it protects at rest.

Every team has one active ``TeamKey``: an Ed25519 signing key (targets and key lists) and an
AES-256 data key (snapshot credentials). Both private halves are stored encrypted with the
platform key (AES-256-GCM, the associated data binding the team id and the purpose, so a sealed
value copied to another team's row or another column does not open).

The platform key is ``settings.MANIFOLD_KEY_ENCRYPTION_KEY`` (base64 of 32 random bytes, from the
environment variable of the same name). Without it (development, tests) the key is derived from
``SECRET_KEY`` with HKDF-SHA256: changing ``SECRET_KEY`` then makes every stored team key
unreadable (no snapshot credentials can be opened, no target signed) until it is set back.
Production settings require the explicit key for that reason.

Private keys never leave this module in clear except to the caller that signs or seals with
them: not in logs, audit rows, API answers or exports.
"""

from __future__ import annotations

import base64
import binascii
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.snapshots.models import TeamKey
from apps.teams.models import Team
from edge_runner.protocol import manifest

_DERIVE_INFO = b"manifold-key-encryption-key-v1"
_VERSION = b"\x01"
_NONCE_BYTES = 12
SIGNING_PURPOSE = "signing-private"
DATA_KEY_PURPOSE = "data-key"
CREDENTIALS_PURPOSE = "snapshot-credentials"


class KeyIntegrityError(RuntimeError):
    """A sealed value does not open: tampered, moved to another row, or the platform key
    changed. Never a user error: the stored data must be looked at."""


@lru_cache(maxsize=4)
def _platform_key(explicit: str, secret_key: str) -> bytes:
    if explicit:
        try:
            key = base64.b64decode(explicit.encode(), validate=True)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured("MANIFOLD_KEY_ENCRYPTION_KEY is not valid base64") from None
        if len(key) != 32:
            raise ImproperlyConfigured(
                f"MANIFOLD_KEY_ENCRYPTION_KEY must be 32 bytes, got {len(key)}"
            )
        return key
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVE_INFO).derive(
        secret_key.encode()
    )


def platform_key() -> bytes:
    return _platform_key(
        str(getattr(settings, "MANIFOLD_KEY_ENCRYPTION_KEY", "") or ""), str(settings.SECRET_KEY)
    )


def _aad(team_id: int, purpose: str) -> bytes:
    return f"manifold/team/{int(team_id)}/{purpose}".encode()


def seal(plaintext: bytes, *, key: bytes, team_id: int, purpose: str) -> bytes:
    """AES-256-GCM of ``plaintext`` bound to the team and purpose: version, nonce, ciphertext."""
    nonce = os.urandom(_NONCE_BYTES)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, _aad(team_id, purpose))


def unseal(sealed: bytes | memoryview, *, key: bytes, team_id: int, purpose: str) -> bytes:
    """Open what ``seal`` made for the same team and purpose, or raise ``KeyIntegrityError``."""
    data = bytes(sealed)
    if len(data) < 1 + _NONCE_BYTES + 16 or data[:1] != _VERSION:
        raise KeyIntegrityError(f"sealed {purpose} of team {team_id} is malformed")
    nonce, body = data[1 : 1 + _NONCE_BYTES], data[1 + _NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, _aad(team_id, purpose))
    except InvalidTag:
        raise KeyIntegrityError(
            f"sealed {purpose} of team {team_id} does not open (tampered, or the platform key "
            "changed)"
        ) from None


# ---------------------------------------------------------------------- team keys
def _new_team_key(team: Team) -> TeamKey:
    private, public = manifest.generate_signing_key()
    wrapping = platform_key()
    return TeamKey(
        team=team,
        key_id=manifest.key_id(public),
        signing_public=public,
        signing_private_sealed=seal(
            private, key=wrapping, team_id=team.pk, purpose=SIGNING_PURPOSE
        ),
        data_key_sealed=seal(
            AESGCM.generate_key(bit_length=256),
            key=wrapping,
            team_id=team.pk,
            purpose=DATA_KEY_PURPOSE,
        ),
    )


def active_team_key(team: Team) -> TeamKey | None:
    return TeamKey.objects.filter(team=team, retired_at__isnull=True).first()


def team_key(team: Team) -> TeamKey:
    """The team's active key, made on first use. Two callers racing both get the same row: the
    partial unique constraint lets one insert win and the other reads the winner."""
    existing = active_team_key(team)
    if existing is not None:
        return existing
    candidate = _new_team_key(team)
    try:
        with transaction.atomic():
            candidate.save()
        return candidate
    except IntegrityError:
        winner = active_team_key(team)
        if winner is None:  # pragma: no cover - the constraint names the only reason
            raise
        return winner


def rotate_team_key(team: Team) -> tuple[TeamKey | None, TeamKey]:
    """Retire the active key and make a new one (inside the caller's transaction, which holds
    the team row lock). Answers (retired, new)."""
    old = TeamKey.objects.select_for_update().filter(team=team, retired_at__isnull=True).first()
    if old is not None:
        old.retired_at = timezone.now()
        old.save(update_fields=["retired_at", "updated_at"])
    new = _new_team_key(team)
    new.save()
    return old, new


def signing_private_key(key: TeamKey) -> bytes:
    return unseal(
        key.signing_private_sealed, key=platform_key(), team_id=key.team_id, purpose=SIGNING_PURPOSE
    )


def data_key(key: TeamKey) -> bytes:
    return unseal(
        key.data_key_sealed, key=platform_key(), team_id=key.team_id, purpose=DATA_KEY_PURPOSE
    )
