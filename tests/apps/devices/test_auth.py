"""Device credentials: a suspended device still authenticates, a decommissioned one is refused
at once with ``decommissioned``, and device credentials, personal access tokens and
provisioning tokens never open each other's doors."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.accounts.services import token_create
from apps.devices.auth import (
    canonical_registration_code,
    device_for_credential,
    hash_secret,
    new_registration_code,
)
from apps.devices.models import Device
from apps.devices.services import (
    device_decommission,
    device_delete,
    device_register,
    device_suspend,
    provisioning_token_create,
)
from tests.conftest import Acme

SELF_PATH = "/api/v1/devices/self/"
KEY = base64.b64encode(b"k" * 32).decode()


@pytest.fixture
def registered(acme_world: Acme) -> tuple[Device, str, str]:
    """A device of acme, its credential and the provisioning token that made it."""
    _, raw = provisioning_token_create(
        principal=Principal.for_user(acme_world.olivia), team=acme_world.team, name="t"
    )
    device, credential = device_register(token=raw, sealing_key_b64=KEY, name="Motor 3")
    return device, credential, raw


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_the_credential_finds_its_device_and_nothing_else_does(
    registered: tuple[Device, str, str],
) -> None:
    device, credential, raw = registered
    assert device_for_credential(credential) == device
    for wrong in (
        raw,
        credential[:-1],
        credential + "x",
        "",
        "mfd_",
        "mfd_" + "é" * 40,
        "x" * 10**4,
    ):
        assert device_for_credential(wrong) is None


def test_a_suspended_device_still_authenticates(
    acme_world: Acme, registered: tuple[Device, str, str]
) -> None:
    device, credential, _ = registered
    device_suspend(principal=Principal.for_user(acme_world.olivia), device=device)
    assert device_for_credential(credential) == device
    response = bearer(credential).get(SELF_PATH)
    assert response.status_code == 200
    assert response.json()["status"] == "suspended"


def test_a_decommissioned_credential_is_refused_at_once_with_its_reason(
    acme_world: Acme, registered: tuple[Device, str, str]
) -> None:
    device, credential, _ = registered
    client = bearer(credential)
    assert client.get(SELF_PATH).status_code == 200
    device_decommission(principal=Principal.for_user(acme_world.olivia), device=device)
    assert device_for_credential(credential) is None
    response = client.get(SELF_PATH)
    assert response.status_code == 401
    assert response.json()["code"] == "decommissioned"
    assert response["WWW-Authenticate"] == "Bearer"
    device.refresh_from_db()
    assert device.status == "decommissioned"
    assert device.decommissioned_at is not None
    # The stored value is no longer the credential's hash: nothing can look it up.
    assert not Device.objects.filter(credential_hash=hash_secret(credential)).exists()


def test_a_deleted_device_s_credential_is_invalid(
    acme_world: Acme, registered: tuple[Device, str, str]
) -> None:
    device, credential, _ = registered
    device_delete(principal=Principal.for_user(acme_world.olivia), device=device)
    response = bearer(credential).get(SELF_PATH)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credential"


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer a b", "Basic abc", "Bearer mfd_nope"])
def test_missing_or_malformed_credentials_are_invalid(acme_world: Acme, header: str) -> None:
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(SELF_PATH)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credential"


def test_device_and_user_secrets_never_open_each_other_s_endpoints(
    acme_world: Acme, registered: tuple[Device, str, str], client_for: Any
) -> None:
    _, credential, provisioning = registered
    personal = token_create(principal=Principal.for_user(acme_world.olivia), name="pat").secret
    team_api = "/api/v1/teams/acme/devices/"
    assert bearer(personal).get(team_api).status_code == 200  # the control
    assert bearer(credential).get(team_api).status_code == 401
    assert bearer(provisioning).get(team_api).status_code == 401
    assert bearer(personal).get(SELF_PATH).status_code == 401
    assert bearer(provisioning).get(SELF_PATH).status_code == 401
    # A signed-in person is not a device either.
    assert client_for(acme_world.olivia).get(SELF_PATH).status_code == 401


def test_registration_codes_are_60_random_bits_in_crockford_base32() -> None:
    codes = {new_registration_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert canonical_registration_code(code) == code
        assert len(code.removeprefix("MFR-").replace("-", "")) == 12
    assert canonical_registration_code("mfr 0123 4567 89ab") == "MFR-0123-4567-89AB"
    assert canonical_registration_code("MFR-oIl0-0000-0000") == "MFR-0110-0000-0000"
    for bad in ("MFR-0123-4567", "MFR-0123-4567-89AU", "mfp_abc", "", "MFR-" + "0" * 100):
        assert canonical_registration_code(bad) is None
