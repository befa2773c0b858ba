"""The secrets of the fleet and how a device proves who it is (docs/device-protocol.md).

Three secrets, each shown once and stored as its SHA-256 hex digest only (they are random: 256,
256 and 60 bits, so a fast hash is the right one):

- the device credential ``mfd_…`` (the bearer token of the link, the device API and the runner's
  local Admin API);
- the provisioning token ``mft_…`` (registers devices; its own prefix, so a leaked one is told
  apart from a personal access token ``mfp_…`` by eye and by secret scanners);
- the registration code ``MFR-XXXX-XXXX-XXXX`` (12 Crockford base32 characters, 60 bits, one
  use, 24 h, typed by a person, so lookups tolerate case, spaces and the look-alikes I/L/O).

A decommissioned device's row keeps ``retired_credential_marker(hash)`` in place of the hash:
the credential matches nothing any more (it fails at once), yet the device API can still tell
the agent "decommissioned" (wipe and stop) rather than "invalid" (keep trying).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.accounts.throttle import Limit, ThrottleKind
from apps.core.prepared import PreparedQuery
from apps.devices.models import Device

CREDENTIAL_PREFIX: Final = "mfd_"
PROVISIONING_PREFIX: Final = "mft_"
REGISTRATION_PREFIX: Final = "MFR-"
CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REGISTRATION_CODE_CHARS: Final = 12
# Longer input is not a secret of ours: refused before hashing.
MAX_SECRET_LENGTH: Final = 200
_LOOK_ALIKES: Final = str.maketrans({"I": "1", "L": "1", "O": "0"})

# Registration codes have 60 bits: failed registrations are counted per client address.
REGISTRATION = ThrottleKind(
    "device_registration",
    "device.registration.throttled",
    per_account=Limit(10, 15 * 60),
    per_ip=Limit(30, 15 * 60),
    refusal="Too many failed device registrations from your network",
)


def hash_secret(raw: str) -> str:
    """The stored form of a fleet secret: SHA-256 hex."""
    return hashlib.sha256(raw.encode()).hexdigest()


def retired_credential_marker(credential_hash: str) -> str:
    """What a decommissioned device keeps in ``credential_hash`` (see the module docstring)."""
    return hash_secret("retired:" + credential_hash)


def new_credential() -> str:
    return CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


def new_provisioning_token() -> str:
    return PROVISIONING_PREFIX + secrets.token_urlsafe(32)


def new_registration_code() -> str:
    chars = "".join(secrets.choice(CROCKFORD) for _ in range(REGISTRATION_CODE_CHARS))
    return REGISTRATION_PREFIX + "-".join(chars[i : i + 4] for i in range(0, len(chars), 4))


def canonical_registration_code(raw: str) -> str | None:
    """``MFR-XXXX-XXXX-XXXX`` from what a person typed, or None if it cannot be one."""
    if len(raw) > 60:
        return None
    text = "".join(raw.upper().split()).replace("-", "")
    head = REGISTRATION_PREFIX.rstrip("-")
    if not text.startswith(head):
        return None
    chars = text[len(head) :].translate(_LOOK_ALIKES)
    if len(chars) != REGISTRATION_CODE_CHARS or any(c not in CROCKFORD for c in chars):
        return None
    return REGISTRATION_PREFIX + "-".join(chars[i : i + 4] for i in range(0, len(chars), 4))


def is_registration_code(raw: str) -> bool:
    """Whether a registration secret is meant as a code (not a provisioning token)."""
    return raw.strip().upper().startswith(REGISTRATION_PREFIX.rstrip("-"))


def credential_digest(raw: object) -> str | None:
    """The stored form of a device credential; None for anything that cannot be one."""
    return _credential_hash(raw)


def _credential_hash(raw: object) -> str | None:
    if not isinstance(raw, str) or not raw.startswith(CREDENTIAL_PREFIX):
        return None
    if len(raw) > MAX_SECRET_LENGTH or not raw.isascii():
        return None
    return hash_secret(raw)


# Every link handshake, bundle download and device API call: compiled once (apps/core/prepared).
_BY_CREDENTIAL: PreparedQuery[Device] = PreparedQuery(
    lambda digest: Device.objects.select_related("team", "application").filter(
        credential_hash=digest, decommissioned_at__isnull=True
    ),
    sentinel="prepared:credential",
)


def device_for_credential(raw: str) -> Device | None:
    """The device holding this credential: None for anything unknown or decommissioned.

    Suspended devices are returned (they keep their link; the callers refuse what they must).
    """
    digest = _credential_hash(raw)
    if digest is None:
        return None
    device = _BY_CREDENTIAL.first(digest)
    # The index lookup found the row; the comparison that decides is constant-time.
    if device is None or not hmac.compare_digest(device.credential_hash or "", digest):
        return None
    return device


def credential_was_retired(raw: str) -> bool:
    """Whether ``raw`` was the credential of a device decommissioned since."""
    digest = _credential_hash(raw)
    if digest is None:
        return False
    marker = retired_credential_marker(digest)
    return Device.objects.filter(credential_hash=marker, decommissioned_at__isnull=False).exists()


class DeviceAuthenticationFailed(exceptions.AuthenticationFailed):
    """401 with the code the agent acts on: ``decommissioned`` (wipe, stop) or
    ``invalid_credential``."""


class DeviceCredentialAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer mfd_…`` on the device endpoints only (``request.auth`` is the
    Device, ``request.user`` anonymous: a device is never a person).

    Never a default authentication class: a device credential opens no team endpoint, and a
    personal access token (``mfp_``) or provisioning token (``mft_``) opens no device endpoint.
    Failures
    are not throttled: a 256-bit credential cannot be guessed, and a fleet behind one address
    must not lock itself out because one retired device keeps retrying.
    """

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AnonymousUser, Device]:
        header = authentication.get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != self.keyword.lower().encode():
            raise DeviceAuthenticationFailed(
                "Send the device credential as 'Authorization: Bearer mfd_…'.",
                code="invalid_credential",
            )
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise DeviceAuthenticationFailed(
                "Invalid device credential.", code="invalid_credential"
            ) from None
        device = device_for_credential(raw)
        if device is not None:
            return AnonymousUser(), device
        if credential_was_retired(raw):
            raise DeviceAuthenticationFailed(
                "This device was decommissioned: wipe its credentials and stop.",
                code="decommissioned",
            )
        raise DeviceAuthenticationFailed("Invalid device credential.", code="invalid_credential")

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
