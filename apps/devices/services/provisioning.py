"""How devices join a team: provisioning tokens, registration codes, registration itself.

``device_register`` is the one way a device row gets a credential. It locks the token row (or
the pre-created device a registration code names) for the rest of its transaction, so a
``max_uses=1`` token used by 50 runners at once makes exactly one device (RELIABILITY family 12).
Every refusal is audited with its reason (``device.registration.refused``) and counted against
the client's address; the caller learns only "invalid token" (401), whatever the reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.principal import DEVICE, Principal
from apps.accounts.throttle import throttle_check, throttle_count
from apps.audit.services import AuditTarget, audit_record
from apps.core.errors import Conflict, ManifoldError, ValidationError
from apps.devices.auth import (
    MAX_SECRET_LENGTH,
    PROVISIONING_PREFIX,
    REGISTRATION,
    canonical_registration_code,
    hash_secret,
    is_registration_code,
    new_credential,
    new_provisioning_token,
    new_registration_code,
)
from apps.devices.models import Device, DeviceGroup, DeviceStatus, ProvisioningToken
from apps.devices.services.devices import (
    announce,
    clean_name,
    clean_tags,
    device_record,
    require_same_team,
)
from apps.devices.services.targets import issue_first_target
from apps.snapshots.models import Snapshot
from apps.teams.models import Application, Team
from edge_runner.protocol.manifest import ManifestError, parse_public_key

REGISTRATION_CODE_LIFETIME: Final = timedelta(hours=24)
MAX_TOKEN_USES: Final = 1_000_000


class InvalidRegistrationToken(ManifoldError):  # noqa: N818  # named after its answer
    """401 ``invalid_token``: unknown, expired, revoked or used up, never told apart."""

    status_code = 401
    code = "invalid_token"

    def __init__(self) -> None:
        super().__init__("Invalid, expired, revoked or used-up token or registration code.")


# --- provisioning tokens ---------------------------------------------------------------------


def _token_record(token: ProvisioningToken) -> dict[str, Any]:
    return {
        "name": token.name,
        "prefix": token.prefix,
        "application": token.application.slug if token.application else None,
        "group": token.group.name if token.group else None,
        "tags": list(token.tags),
        "expires_at": token.expires_at,
        "max_uses": token.max_uses,
    }


def provisioning_token_create(
    *,
    principal: Principal,
    team: Team,
    name: str,
    application: Application | None = None,
    group: DeviceGroup | None = None,
    tags: Sequence[str] = (),
    expires_at: datetime | None = None,
    max_uses: int | None = None,
    snapshot: Snapshot | None = None,
) -> tuple[ProvisioningToken, str]:
    """A team token that registers devices (assigning ``application``, ``group``, ``tags``, and
    ``snapshot`` of that application as their first target); returns the row and the raw
    token, which is never stored or shown again."""
    principal.require_writable("create provisioning tokens")
    name = clean_name(name)
    tag_list = clean_tags(list(tags))
    require_same_team(team, application, [group] if group else [])
    if snapshot is not None and (
        application is None
        or snapshot.team_id != team.pk
        or snapshot.application_id != application.pk
    ):
        raise ValidationError(
            "The snapshot must be one of the token's application.",
            fields={"snapshot": "Choose a snapshot of the application the token assigns."},
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError(
            "The expiry must be in the future.", fields={"expires_at": "Must be in the future."}
        )
    if max_uses is not None and not 1 <= max_uses <= MAX_TOKEN_USES:
        raise ValidationError(
            f"Max uses must be 1 to {MAX_TOKEN_USES}.",
            fields={"max_uses": f"Enter 1 to {MAX_TOKEN_USES}, or leave empty for no limit."},
        )
    raw = new_provisioning_token()
    with transaction.atomic():
        token = ProvisioningToken.objects.create(
            team=team,
            name=name,
            token_hash=hash_secret(raw),
            prefix=raw[: len(PROVISIONING_PREFIX) + 6],
            application=application,
            group=group,
            tags=tag_list,
            expires_at=expires_at,
            max_uses=max_uses,
            snapshot=snapshot,
            created_by=principal.user,
        )
        audit_record(
            event="device.provisioning_token.created",
            principal=principal,
            team=team,
            application=application,
            target=token,
            after=_token_record(token),
        )
    return token, raw


def provisioning_token_revoke(*, principal: Principal, token: ProvisioningToken) -> None:
    """No device registers with it from now on (devices it registered stay)."""
    principal.require_writable("revoke provisioning tokens")
    with transaction.atomic():
        token = (
            ProvisioningToken.objects.select_for_update(of=("self",))
            .select_related("team", "application", "group")
            .get(pk=token.pk)
        )
        if token.revoked_at is not None:
            raise Conflict(f"The provisioning token {token.name!r} is already revoked.")
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
        audit_record(
            event="device.provisioning_token.revoked",
            principal=principal,
            team=token.team,
            application=token.application,
            target=token,
            before=_token_record(token),
        )


# --- registration codes ----------------------------------------------------------------------


def registration_code_create(
    *,
    principal: Principal,
    team: Team,
    name: str,
    application: Application | None = None,
    groups: Sequence[DeviceGroup] = (),
) -> tuple[Device, str]:
    """A pending device and its one-use code (valid 24 h), shown once to the person who will
    type it on the device."""
    principal.require_writable("create registration codes")
    name = clean_name(name)
    require_same_team(team, application, groups)
    raw = new_registration_code()
    with transaction.atomic():
        device = Device.objects.create(
            team=team,
            name=name,
            application=application,
            status=DeviceStatus.PENDING,
            registration_code_hash=hash_secret(raw),
            registration_code_expires_at=timezone.now() + REGISTRATION_CODE_LIFETIME,
        )
        device.groups.set(list(groups))
        audit_record(
            event="device.registration_code.created",
            principal=principal,
            team=team,
            application=application,
            target=device,
            after=device_record(device) | {"code_expires_at": device.registration_code_expires_at},
        )
        announce(device)
    return device, raw


def set_registration_code(device: Device, lifetime: timedelta) -> str:
    """Give the (locked) device a fresh one-use code; the code it had stops working."""
    raw = new_registration_code()
    device.registration_code_hash = hash_secret(raw)
    device.registration_code_expires_at = timezone.now() + lifetime
    device.save(
        update_fields=["registration_code_hash", "registration_code_expires_at", "updated_at"]
    )
    return raw


def registration_code_reissue(*, principal: Principal, device: Device) -> tuple[Device, str]:
    """A new code (valid 24 h) for a device still waiting for registration; the old one is
    revoked. Audited ``device.registration_code.reissued``."""
    principal.require_writable("issue registration codes")
    with transaction.atomic():
        device = (
            Device.objects.select_for_update(of=("self",))
            .select_related("team", "application")
            .get(pk=device.pk)
        )
        if device.decommissioned_at is not None:
            raise Conflict(f"Device {device.name!r} is decommissioned: it cannot register.")
        if device.registered_at is not None:
            raise Conflict(f"Device {device.name!r} is already registered.")
        if device.hosted_driver:
            raise Conflict(
                f"Device {device.name!r} is a hosted instance: the platform registers it itself."
            )
        before = device.registration_code_expires_at
        raw = set_registration_code(device, REGISTRATION_CODE_LIFETIME)
        audit_record(
            event="device.registration_code.reissued",
            principal=principal,
            team=device.team,
            application=device.application,
            target=device,
            before={"code_expires_at": before},
            after={"code_expires_at": device.registration_code_expires_at},
        )
    return device, raw


# --- registration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    reason: str
    team: Team | None = None
    details: dict[str, Any] | None = None


def _text(value: object, field: str, max_length: int, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > max_length or (required and not value.strip()):
        raise ValidationError(
            f"{field} must be text of at most {max_length} characters.",
            fields={field: f"At most {max_length} characters."},
            code="malformed",
        )
    return value.strip()


def _with_token(raw: str) -> ProvisioningToken | _Refusal:
    token = (
        ProvisioningToken.objects.select_for_update(of=("self",))
        .select_related("team", "application", "group", "created_by")
        .filter(token_hash=hash_secret(raw))
        .first()
    )
    if token is None:
        return _Refusal("unknown token")
    details = {"token_prefix": token.prefix, "token_id": token.pk}
    now = timezone.now()
    if token.revoked_at is not None:
        return _Refusal("revoked", token.team, details)
    if token.expires_at is not None and token.expires_at <= now:
        return _Refusal("expired", token.team, details)
    if token.max_uses is not None and token.uses >= token.max_uses:
        return _Refusal("used up", token.team, details | {"max_uses": token.max_uses})
    return token


def _with_code(raw: str) -> Device | _Refusal:
    code = canonical_registration_code(raw)
    if code is None:
        return _Refusal("malformed registration code")
    device = (
        Device.objects.select_for_update(of=("self",))
        .select_related("team", "application")
        .filter(registration_code_hash=hash_secret(code))
        .first()
    )
    if device is None:
        return _Refusal("unknown registration code")
    details = {"device_id": device.pk}
    if device.decommissioned_at is not None:
        return _Refusal("device decommissioned", device.team, details)
    expires = device.registration_code_expires_at
    if expires is None or expires <= timezone.now():
        return _Refusal("registration code expired", device.team, details)
    return device


def _registered(
    device: Device,
    credential: str,
    *,
    sealing_key: bytes,
    agent_version: str,
    hostname: str,
) -> None:
    device.credential_hash = hash_secret(credential)
    device.sealing_public_key = sealing_key
    device.agent_version = agent_version
    device.hostname = hostname
    device.registered_at = timezone.now()
    device.registration_code_hash = None
    device.registration_code_expires_at = None
    device.status = DeviceStatus.SUSPENDED if device.suspended else DeviceStatus.OFFLINE
    device.save()


def device_register(
    *,
    token: str,
    name: str | None = None,
    sealing_key_b64: str,
    agent_version: str = "",
    hostname: str = "",
) -> tuple[Device, str]:
    """Register a runner with a provisioning token or a registration code; returns the device
    and its credential (shown once).

    Bad shapes raise ``ValidationError`` (400 ``malformed``); every refusal of the secret itself
    raises ``InvalidRegistrationToken`` (401) after auditing the reason.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_SECRET_LENGTH:
        raise ValidationError(
            "token must be a provisioning token or a registration code.",
            fields={"token": "Required."},
            code="malformed",
        )
    try:
        sealing_key = parse_public_key(sealing_key_b64, "sealing_key")
    except ManifestError as exc:
        raise ValidationError(
            str(exc), fields={"sealing_key": "Base64 of a 32-byte X25519 key."}, code="malformed"
        ) from None
    given_name = _text(name, "name", 100)
    agent_version = _text(agent_version, "agent_version", 40)
    hostname = _text(hostname, "hostname", 200)
    throttle_check(REGISTRATION, account=None)

    with transaction.atomic():
        if is_registration_code(token):
            found: Any = _with_code(token)
        else:
            found = _with_token(token)
        if isinstance(found, _Refusal):
            audit_record(
                event="device.registration.refused",
                principal=Principal.system("device registration"),
                team=found.team,
                target=AuditTarget("devices.registration", ""),
                after={"reason": found.reason, **(found.details or {})},
            )
            refused = True
        else:
            refused = False
            registration = _register_found(
                found,
                name=given_name,
                sealing_key=sealing_key,
                agent_version=agent_version,
                hostname=hostname,
            )
    if refused:
        throttle_count(REGISTRATION, account=None)
        raise InvalidRegistrationToken()
    return registration


def _register_found(
    found: ProvisioningToken | Device,
    *,
    name: str,
    sealing_key: bytes,
    agent_version: str,
    hostname: str,
) -> tuple[Device, str]:
    credential = new_credential()
    details: dict[str, Any]
    if isinstance(found, ProvisioningToken):
        token = found
        device = Device.objects.create(
            team=token.team,
            name=clean_name((name or hostname or "device")[:100]),
            application=token.application,
            tags=list(token.tags),
            registered_with=token,
        )
        if token.group is not None:
            device.groups.add(token.group)
        token.uses += 1
        token.last_used_at = timezone.now()
        token.save(update_fields=["uses", "last_used_at", "updated_at"])
        creator = token.created_by.email if token.created_by else ""
        details = {"token_prefix": token.prefix, "token_id": token.pk, "provisioned_by": creator}
        first_target = token.snapshot
    else:
        device = found
        details = {"registration_code": True}
        first_target = None
    _registered(
        device,
        credential,
        sealing_key=sealing_key,
        agent_version=agent_version,
        hostname=hostname,
    )
    audit_record(
        event="device.device.registered",
        principal=Principal.for_subject(DEVICE, device, f"device {device.name}"),
        team=device.team,
        application=device.application,
        target=device,
        after=device_record(device)
        | details
        | {"agent_version": agent_version, "hostname": hostname},
    )
    if first_target is not None and first_target.application_id == device.application_id:
        issue_first_target(device, first_target)
    announce(device)
    return device, credential


def registration_signing_keys(team: Team) -> list[bytes]:
    """The team's signing keys a new device pins (active first), from the snapshots app.

    Resolved at call time: ``apps.snapshots.services.team_signing_keys`` is built beside this
    module; until it exists, the team's stored public keys answer.
    """
    try:
        snapshots = importlib.import_module("apps.snapshots.services")
    except ModuleNotFoundError:
        from apps.snapshots.models import TeamKey

        rows = TeamKey.objects.filter(team=team).order_by(
            F("retired_at").asc(nulls_first=True), "-created_at", "-id"
        )
        return [bytes(row.signing_public) for row in rows]
    keys: list[bytes] = snapshots.team_signing_keys(team)
    return keys
