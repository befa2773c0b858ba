"""The runner's side of registration over HTTP (docs/device-protocol.md): the 201 body exactly,
malformed bodies (400), one indistinct 401 for every refused secret, 429 after repeated failures,
and the device reading itself with its credential."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.devices.auth import REGISTRATION, hash_secret
from apps.devices.models import Device
from apps.devices.services import (
    provisioning_token_create,
    provisioning_token_revoke,
    registration_code_create,
)
from apps.snapshots.models import TeamKey
from edge_runner.protocol.link import REGISTER_PATH
from edge_runner.protocol.manifest import generate_sealing_key, generate_signing_key, key_id
from tests.conftest import Acme

SELF_PATH = "/api/v1/devices/self/"


def sealing_key() -> str:
    return base64.b64encode(generate_sealing_key()[1]).decode()


@pytest.fixture
def team_key(acme_world: Acme) -> bytes:
    """acme's signing key as the snapshots app stores it (public half; the private half is not
    needed to list it)."""
    public = generate_signing_key()[1]
    TeamKey.objects.create(
        team=acme_world.team,
        key_id=key_id(public),
        signing_public=public,
        signing_private_sealed=b"sealed",
        data_key_sealed=b"sealed",
    )
    return public


@pytest.fixture
def token(acme_world: Acme) -> str:
    _, raw = provisioning_token_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Line 1",
        application=acme_world.line_1,
    )
    return raw


def post(body: Any, client: APIClient | None = None) -> Any:
    return (client or APIClient()).post(REGISTER_PATH, body, format="json")


def test_registration_answers_the_documented_body(
    acme_world: Acme, token: str, team_key: bytes
) -> None:
    response = post(
        {
            "token": token,
            "name": "motor-3 edge",
            "sealing_key": sealing_key(),
            "agent_version": "0.1.0",
            "hostname": "m3",
        }
    )
    assert response.status_code == 201, response.content
    body = response.json()
    device = Device.objects.get()
    assert body == {
        "device": {"id": device.pk, "name": "motor-3 edge", "team": str(acme_world.team.pk)},
        "credential": body["credential"],
        "signing_keys": [base64.b64encode(team_key).decode()],
        "protocol": 1,
        "heartbeat_seconds": 15,
    }
    assert body["credential"].startswith("mfd_")
    assert device.credential_hash == hash_secret(body["credential"])
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {body['credential']}")
    answer = me.get(SELF_PATH)
    assert answer.status_code == 200
    assert answer.json() == {
        "id": device.pk,
        "name": "motor-3 edge",
        "status": "offline",
        "signing_keys": body["signing_keys"],
    }


@pytest.mark.parametrize(
    "body",
    [
        [],
        "token",
        {},
        {"token": "mft_x"},
        {"token": 7, "sealing_key": "AAAA"},
        {"token": "mft_x", "sealing_key": "AAAA"},
        {"token": "mft_x", "sealing_key": base64.b64encode(b"k" * 32).decode(), "name": "n" * 101},
    ],
)
def test_malformed_bodies_are_400_malformed(acme_world: Acme, body: Any) -> None:
    response = post(body)
    assert response.status_code == 400
    assert response.json()["code"] == "malformed"
    assert response.json()["error"]["code"] == "malformed"
    assert not Device.objects.exists()


def test_every_refused_secret_gets_the_same_401(acme_world: Acme, token: str) -> None:
    olivia = Principal.for_user(acme_world.olivia)
    revoked, revoked_raw = provisioning_token_create(
        principal=olivia, team=acme_world.team, name="r"
    )
    provisioning_token_revoke(principal=olivia, token=revoked)
    _device, code = registration_code_create(principal=olivia, team=acme_world.team, name="Oven")
    assert post({"token": code, "sealing_key": sealing_key()}).status_code == 201
    bodies = set()
    for secret in (revoked_raw, code, "mft_" + "Q" * 43, "MFR-2222-2222-2222", "nonsense"):
        response = post({"token": secret, "sealing_key": sealing_key()})
        assert response.status_code == 401
        bodies.add(response.content)
    assert len(bodies) == 1
    assert Device.objects.filter(credential_hash__isnull=False).count() == 1


def test_repeated_failures_from_one_address_are_throttled(acme_world: Acme, token: str) -> None:
    for _ in range(REGISTRATION.per_ip.attempts):
        assert (
            post({"token": "MFR-2222-2222-2222", "sealing_key": sealing_key()}).status_code == 401
        )
    # The right token too, until the window ends: guessing codes from one address stops here.
    response = post({"token": token, "sealing_key": sealing_key()})
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    assert not Device.objects.exists()


def test_a_personal_access_token_does_not_register_a_device(
    acme_world: Acme, token_client: Any
) -> None:
    from apps.accounts.services import token_create

    personal = token_create(principal=Principal.for_user(acme_world.olivia), name="pat").secret
    assert personal.startswith("mfp_")
    response = post({"token": personal, "sealing_key": sealing_key()})
    assert response.status_code == 401
    assert not Device.objects.exists()
