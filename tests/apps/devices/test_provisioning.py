"""Provisioning tokens and registration codes: expiry, revocation, max uses, reuse, forgery, the
24 h code, audit rows for every outcome, and the race of one ``max_uses=1`` token used by 50
runners at once (RELIABILITY family 12)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import close_old_connections, connection, connections
from django.utils import timezone

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.core.errors import Conflict, ValidationError
from apps.devices.auth import canonical_registration_code, hash_secret
from apps.devices.models import Device, DeviceStatus, ProvisioningToken
from apps.devices.services import (
    InvalidRegistrationToken,
    device_group_create,
    device_register,
    provisioning_token_create,
    provisioning_token_revoke,
    registration_code_create,
)
from apps.teams.models import Team
from tests.conftest import Acme, Globex, make_user
from tests.routes import SEALING_KEY_B64

Register = Callable[..., tuple[Device, str]]


def register(token: str, **fields: Any) -> tuple[Device, str]:
    return device_register(token=token, sealing_key_b64=SEALING_KEY_B64, **fields)


def refusals(team: Team | None) -> list[str]:
    """The reasons of the team's (None: the platform's) refused registrations, oldest first."""
    rows = AuditEvent.objects.filter(
        team_key=team.pk if team else 0, event="device.registration.refused"
    ).order_by("id")
    return [str((row.after or {})["reason"]) for row in rows]


@pytest.fixture
def olivia(acme_world: Acme) -> Principal:
    return Principal.for_user(acme_world.olivia)


# --- provisioning tokens ------------------------------------------------------------------


def test_a_token_registers_a_device_with_its_assignments(
    acme_world: Acme, olivia: Principal, audit_log: Any
) -> None:
    group = device_group_create(principal=olivia, team=acme_world.team, name="Presses")
    token, raw = provisioning_token_create(
        principal=olivia,
        team=acme_world.team,
        name="Line 1",
        application=acme_world.line_1,
        group=group,
        tags=["line-3", "PRD", "line-3"],
    )
    assert raw.startswith("mft_")
    assert len(raw) > 40
    assert token.token_hash == hash_secret(raw)
    assert raw not in str(token.__dict__)
    device, credential = register(raw, name="Motor 3", agent_version="0.1.0", hostname="m3")
    assert credential.startswith("mfd_")
    device.refresh_from_db()
    assert device.credential_hash == hash_secret(credential)
    assert device.team == acme_world.team
    assert device.application == acme_world.line_1
    assert list(device.groups.all()) == [group]
    assert device.tags == ["line-3", "PRD"]
    assert device.status == DeviceStatus.OFFLINE
    assert device.registered_at is not None
    assert bytes(device.sealing_public_key) == b"foobarbazquxfoobarbazquxfoobarba"
    assert (device.agent_version, device.hostname, device.registered_with) == ("0.1.0", "m3", token)
    token.refresh_from_db()
    assert token.uses == 1
    assert token.last_used_at is not None
    assert audit_log(acme_world.team)[-3:] == [
        "device.group.created",
        "device.provisioning_token.created",
        "device.device.registered",
    ]
    row = AuditEvent.objects.get(event="device.device.registered")
    assert row.after is not None
    assert (row.actor_type, row.actor_id) == ("device", str(device.pk))
    assert row.after["provisioned_by"] == "olivia@acme.test"
    assert row.after["token_prefix"] == token.prefix
    assert credential not in str(row.after)
    assert raw not in str(row.after)


def test_expired_revoked_used_up_and_forged_tokens_are_refused_alike(
    acme_world: Acme, olivia: Principal
) -> None:
    team = acme_world.team
    _, once = provisioning_token_create(principal=olivia, team=team, name="once", max_uses=1)
    register(once)
    expiring, soon = provisioning_token_create(
        principal=olivia, team=team, name="soon", expires_at=timezone.now() + timedelta(hours=1)
    )
    revoked, gone = provisioning_token_create(principal=olivia, team=team, name="gone")
    provisioning_token_revoke(principal=olivia, token=revoked)
    devices = Device.objects.count()

    later = timezone.now() + timedelta(hours=2)
    with (
        mock.patch("django.utils.timezone.now", return_value=later),
        pytest.raises(InvalidRegistrationToken) as expired,
    ):
        register(soon)
    messages = {str(expired.value)}
    for raw in (once, gone, once[:-1] + ("A" if once[-1] != "A" else "B"), "mft_" + "x" * 43):
        with pytest.raises(InvalidRegistrationToken) as refused:
            register(raw)
        messages.add(str(refused.value))
        assert refused.value.status_code == 401
        assert refused.value.code == "invalid_token"
    assert len(messages) == 1  # the caller cannot tell the reasons apart
    assert Device.objects.count() == devices
    assert refusals(team) == ["expired", "used up", "revoked"]
    assert refusals(None) == ["unknown token", "unknown token"]
    expiring.refresh_from_db()
    assert expiring.uses == 0


def test_an_unlimited_token_is_reused_and_max_uses_is_exact(
    acme_world: Acme, olivia: Principal
) -> None:
    _, many = provisioning_token_create(principal=olivia, team=acme_world.team, name="many")
    _, three = provisioning_token_create(
        principal=olivia, team=acme_world.team, name="three", max_uses=3
    )
    assert len({register(many)[1] for _ in range(4)}) == 4
    for _ in range(3):
        register(three)
    with pytest.raises(InvalidRegistrationToken):
        register(three)
    assert ProvisioningToken.objects.get(name="three").uses == 3
    assert Device.objects.filter(team=acme_world.team).count() == 7


def test_token_rules_refuse_bad_input_and_foreign_assignments(
    acme_world: Acme, globex_world: Globex, olivia: Principal
) -> None:
    team = acme_world.team
    bad: list[dict[str, Any]] = [
        {"name": " "},
        {"name": "t", "max_uses": 0},
        {"name": "t", "expires_at": timezone.now() - timedelta(seconds=1)},
        {"name": "t", "tags": ["bad tag"]},
        {"name": "t", "application": globex_world.hq},
    ]
    for fields in bad:
        with pytest.raises(ValidationError):
            provisioning_token_create(principal=olivia, team=team, **fields)
    foreign_group = device_group_create(
        principal=Principal.for_user(globex_world.oscar), team=globex_world.team, name="G"
    )
    with pytest.raises(ValidationError):
        provisioning_token_create(principal=olivia, team=team, name="t", group=foreign_group)
    assert not ProvisioningToken.objects.filter(team=team).exists()


def test_revoking_twice_is_a_conflict_and_audited_once(
    acme_world: Acme, olivia: Principal, audit_log: Any
) -> None:
    token, _ = provisioning_token_create(principal=olivia, team=acme_world.team, name="t")
    provisioning_token_revoke(principal=olivia, token=token)
    with pytest.raises(Conflict):
        provisioning_token_revoke(principal=olivia, token=token)
    assert audit_log(acme_world.team).count("device.provisioning_token.revoked") == 1


def test_malformed_registrations_are_400_and_audit_nothing(
    acme_world: Acme, olivia: Principal
) -> None:
    _, raw = provisioning_token_create(principal=olivia, team=acme_world.team, name="t")
    before = AuditEvent.objects.count()
    cases: list[dict[str, Any]] = [
        {"token": raw, "sealing_key_b64": "not base64!"},
        {"token": raw, "sealing_key_b64": "AAAA"},
        {"token": "", "sealing_key_b64": SEALING_KEY_B64},
        {"token": raw, "sealing_key_b64": SEALING_KEY_B64, "hostname": "h" * 201},
        {"token": raw, "sealing_key_b64": SEALING_KEY_B64, "name": 5},
    ]
    for fields in cases:
        with pytest.raises(ValidationError) as refused:
            device_register(**fields)
        assert refused.value.code == "malformed"
    assert AuditEvent.objects.count() == before
    assert not Device.objects.exists()


# --- registration codes -------------------------------------------------------------------


def test_a_registration_code_registers_its_pending_device_once_within_24_hours(
    acme_world: Acme, olivia: Principal, audit_log: Any
) -> None:
    device, code = registration_code_create(
        principal=olivia, team=acme_world.team, name="Oven 2", application=acme_world.line_1
    )
    assert canonical_registration_code(code) == code
    assert len(code) == len("MFR-XXXX-XXXX-XXXX")
    assert device.status == DeviceStatus.PENDING
    assert device.credential_hash is None
    assert device.registration_code_hash == hash_secret(code)
    # A person types it: lower case, spaces, look-alike letters.
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    at_23h = timezone.now() + timedelta(hours=23, minutes=59)
    with mock.patch("django.utils.timezone.now", return_value=at_23h):
        registered, credential = register(typed, name="ignored", hostname="oven2")
    assert registered.pk == device.pk
    assert registered.name == "Oven 2"
    registered.refresh_from_db()
    assert registered.credential_hash == hash_secret(credential)
    assert registered.registration_code_hash is None
    assert registered.status == DeviceStatus.OFFLINE
    with pytest.raises(InvalidRegistrationToken):
        register(code)
    assert refusals(None) == ["unknown registration code"]
    assert audit_log(acme_world.team)[-2:] == [
        "device.registration_code.created",
        "device.device.registered",
    ]


def test_a_registration_code_expires_after_24_hours(acme_world: Acme, olivia: Principal) -> None:
    device, code = registration_code_create(principal=olivia, team=acme_world.team, name="Oven")
    at_24h = timezone.now() + timedelta(hours=24, seconds=1)
    with (
        mock.patch("django.utils.timezone.now", return_value=at_24h),
        pytest.raises(InvalidRegistrationToken),
    ):
        register(code)
    device.refresh_from_db()
    assert device.credential_hash is None
    assert device.status == DeviceStatus.PENDING
    assert refusals(acme_world.team) == ["registration code expired"]


@pytest.mark.parametrize(
    "forged", ["MFR-0000-0000-0000", "MFR-ABCD", "MFR-UUUU-UUUU-UUUU", "MFR-" + "1" * 30]
)
def test_forged_registration_codes_are_refused(
    acme_world: Acme, olivia: Principal, forged: str
) -> None:
    registration_code_create(principal=olivia, team=acme_world.team, name="Oven")
    with pytest.raises(InvalidRegistrationToken):
        register(forged)
    assert not Device.objects.filter(credential_hash__isnull=False).exists()


# --- the race (family 12) -----------------------------------------------------------------

RACERS = 50


@pytest.fixture
def race_team(transactional_db: Any) -> Team:
    from apps.teams.services import team_create

    owner = make_user("racer@example.test")
    return team_create(principal=Principal.for_user(owner), name="Race", slug="race")


def _race(raw: str) -> tuple[list[str], list[str]]:
    barrier = threading.Barrier(RACERS)
    outcomes: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            register(raw, name=f"racer {index}")
            outcome = "registered"
        except InvalidRegistrationToken:
            outcome = "refused"
        except Exception as exc:  # any other failure is the finding
            outcome = "error"
            with lock:
                errors.append(repr(exc))
        finally:
            close_old_connections()
            connections.close_all()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes, errors


@pytest.mark.parametrize("round_", range(2))
def test_a_one_use_token_used_by_50_runners_at_once_makes_exactly_one_device(
    race_team: Team, round_: int
) -> None:
    owner = Principal.for_user(race_team.memberships.get().user)
    token, raw = provisioning_token_create(
        principal=owner, team=race_team, name=f"once {round_}", max_uses=1
    )
    outcomes, errors = _race(raw)
    created = Device.objects.filter(registered_with=token).count()
    token.refresh_from_db()
    print(
        f"provisioning race ({connection.vendor}): {RACERS} parallel registrations with a "
        f"max_uses=1 token -> devices created={created}, registered={outcomes.count('registered')}"
        f", refused={outcomes.count('refused')}, errors={len(errors)}"
    )
    assert errors == []
    assert created == 1
    assert token.uses == 1
    assert sorted(outcomes) == ["refused"] * (RACERS - 1) + ["registered"]
    assert refusals(race_team) == ["used up"] * (RACERS - 1)


# --- a token's first target ----------------------------------------------------------------


def test_a_token_with_a_snapshot_gives_each_new_device_that_target(
    acme_world: Acme, olivia: Principal
) -> None:
    from apps.devices.models import TargetOutcome
    from apps.snapshots.services import snapshot_create

    snapshot = snapshot_create(
        principal=olivia,
        application=acme_world.line_1,
        name="v1",
        flows=[{"id": "t1", "type": "tab", "label": "Flow 1"}],
    )
    _, raw = provisioning_token_create(
        principal=olivia,
        team=acme_world.team,
        name="Line 1",
        application=acme_world.line_1,
        snapshot=snapshot,
    )
    device, _ = register(raw, name="press-1")
    device.refresh_from_db()
    assert device.target is not None
    assert device.target.snapshot_id == snapshot.pk
    assert device.target.outcome == TargetOutcome.PENDING
    assert device.target.envelope["manifest"]["device"] == str(device.pk)
    assert AuditEvent.objects.filter(event="device.target.set", target_id=str(device.pk)).exists()


def test_a_token_snapshot_must_belong_to_its_application(
    acme_world: Acme, olivia: Principal
) -> None:
    from apps.snapshots.services import snapshot_create
    from apps.teams.services import application_create

    other = application_create(principal=olivia, team=acme_world.team, name="Line 2", slug="line-2")
    snapshot = snapshot_create(
        principal=olivia,
        application=other,
        name="v1",
        flows=[{"id": "t1", "type": "tab", "label": "Flow 1"}],
    )
    before = ProvisioningToken.objects.count()
    for application in (acme_world.line_1, None):
        with pytest.raises(ValidationError, match="snapshot"):
            provisioning_token_create(
                principal=olivia,
                team=acme_world.team,
                name="Line 1",
                application=application,
                snapshot=snapshot,
            )
    assert ProvisioningToken.objects.count() == before
