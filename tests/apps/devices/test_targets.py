"""Issuing targets: signed per device, credentials sealed to the device, the API's checks."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.core.errors import NotFound, PermissionDenied
from apps.devices.models import Device, DeviceStateChange, DeviceStatus, DeviceTarget, TargetOutcome
from apps.devices.services.link import device_state_at
from apps.devices.services.targets import application_set_target, device_set_target
from apps.snapshots.services import team_signing_keys
from apps.teams.services import application_create
from edge_runner.protocol import manifest
from tests.apps.devices.linkworld import register, snapshot
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db


def target_url(device: Device) -> str:
    return f"/api/v1/teams/acme/devices/{device.pk}/target/"


def test_a_target_is_signed_for_the_device_with_its_credentials_sealed_to_it(
    acme_world: Acme, audit_log: Callable[[Any], list[str]]
) -> None:
    press = register(acme_world.line_1, "press-1")
    v1 = snapshot(acme_world.line_1, "v1", secret=True)
    target = device_set_target(
        principal=Principal.for_user(acme_world.eddie), device=press.device, snapshot=v1
    )
    verified = manifest.verify(
        target.envelope,
        trusted_keys=team_signing_keys(acme_world.team),
        team=str(acme_world.team.pk),
        device=str(press.device.pk),
    )
    assert verified.snapshot == str(v1.pk)
    assert verified.digest == target.digest
    sealed = verified.part(manifest.CREDENTIALS_PART)
    assert sealed is not None
    manifest.check_part(sealed, bytes(target.credentials_sealed))
    opened = json.loads(
        manifest.unseal(
            bytes(target.credentials_sealed),
            private_key=press.sealing_private,
            device=str(press.device.pk),
        )
    )
    assert opened == {"broker": {"user": "plc", "password": "canary-Pa55-xyz"}}
    # Another device's key does not open it; the plaintext is nowhere in the stored target.
    other = register(acme_world.line_1, "press-2")
    with pytest.raises(manifest.ManifestError):
        manifest.unseal(
            bytes(target.credentials_sealed),
            private_key=other.sealing_private,
            device=str(press.device.pk),
        )
    assert "canary-Pa55-xyz" not in json.dumps(target.envelope)
    assert b"canary-Pa55-xyz" not in bytes(target.credentials_sealed)
    assert Device.objects.get(pk=press.device.pk).target_id == target.pk
    assert audit_log(acme_world.team)[-1] == "device.target.set"


def test_a_new_target_supersedes_the_pending_one_and_generations_grow(acme_world: Acme) -> None:
    press = register(acme_world.line_1, "press-1")
    eddie = Principal.for_user(acme_world.eddie)
    first = device_set_target(
        principal=eddie, device=press.device, snapshot=snapshot(acme_world.line_1)
    )
    second = device_set_target(
        principal=eddie, device=press.device, snapshot=snapshot(acme_world.line_1, "v2")
    )
    assert second.generation > first.generation
    assert DeviceTarget.objects.get(pk=first.pk).outcome == TargetOutcome.SUPERSEDED
    assert DeviceTarget.objects.get(pk=second.pk).outcome == TargetOutcome.PENDING


def test_viewers_may_not_deploy_and_nothing_changes(acme_world: Acme) -> None:
    press = register(acme_world.line_1, "press-1")
    with pytest.raises(PermissionDenied):
        device_set_target(
            principal=Principal.for_user(acme_world.vera),
            device=press.device,
            snapshot=snapshot(acme_world.line_1),
        )
    assert not DeviceTarget.objects.exists()
    assert Device.objects.get(pk=press.device.pk).target_id is None


def test_the_api_deploys_to_one_device(acme_world: Acme, eddie_api: APIClient) -> None:
    press = register(acme_world.line_1, "press-1")
    v1 = snapshot(acme_world.line_1)
    answer = eddie_api.post(target_url(press.device), {"snapshot": v1.pk}, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["snapshot"] == v1.pk
    assert Device.objects.get(pk=press.device.pk).target.snapshot_id == v1.pk  # type: ignore[union-attr]  # just set


@pytest.mark.parametrize("which", ["other_team", "other_application", "missing", "text"])
def test_a_snapshot_outside_the_device_application_is_not_found(
    acme_world: Acme, globex_world: Globex, olivia_api: APIClient, which: str
) -> None:
    press = register(acme_world.line_1, "press-1")
    line_2 = application_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="L2",
        slug="line-2",
    )
    choices: dict[str, Callable[[], Any]] = {
        "other_team": lambda: snapshot(globex_world.hq).pk,
        "other_application": lambda: snapshot(line_2).pk,
        "missing": lambda: 987654,
        "text": lambda: "drop table",
    }
    snapshot_id = choices[which]()
    answer = olivia_api.post(target_url(press.device), {"snapshot": snapshot_id}, format="json")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert not DeviceTarget.objects.exists()


def test_another_teams_device_is_not_found(
    acme_world: Acme, globex_world: Globex, oscar_api: APIClient
) -> None:
    press = register(acme_world.line_1, "press-1")
    theirs = snapshot(globex_world.hq)
    answer = oscar_api.post(
        f"/api/v1/teams/globex/devices/{press.device.pk}/target/",
        {"snapshot": theirs.pk},
        format="json",
    )
    assert answer.status_code == 404
    assert not DeviceTarget.objects.exists()


def test_a_body_without_snapshot_is_a_clear_400(acme_world: Acme, olivia_api: APIClient) -> None:
    press = register(acme_world.line_1, "press-1")
    answer = olivia_api.post(target_url(press.device), {}, format="json")
    assert answer.status_code == 400
    assert "snapshot" in answer.json()["error"]["fields"]


def test_deploying_to_an_application_targets_each_registered_device(
    acme_world: Acme, globex_world: Globex, eddie_api: APIClient
) -> None:
    one, two = register(acme_world.line_1, "a"), register(acme_world.line_1, "b")
    elsewhere = register(globex_world.hq, "theirs")
    v1 = snapshot(acme_world.line_1)
    answer = eddie_api.post(
        "/api/v1/teams/acme/applications/line-1/deploy/", {"snapshot": v1.pk}, format="json"
    )
    assert answer.status_code == 201, answer.json()
    assert sorted(t["device"] for t in answer.json()["targets"]) == [one.device.pk, two.device.pk]
    assert Device.objects.get(pk=elsewhere.device.pk).target_id is None
    generations = [t["generation"] for t in answer.json()["targets"]]
    assert len(set(generations)) == 2


def test_application_deploy_refuses_a_foreign_snapshot(
    acme_world: Acme, globex_world: Globex
) -> None:
    register(acme_world.line_1, "a")
    with pytest.raises(NotFound):
        application_set_target(
            principal=Principal.for_user(acme_world.olivia),
            application=acme_world.line_1,
            snapshot=snapshot(globex_world.hq),
        )
    assert not DeviceTarget.objects.exists()


def test_history_answers_which_snapshot_was_active_at_a_time(
    acme_world: Acme, vera_api: APIClient
) -> None:
    press = register(acme_world.line_1, "press-1")
    eddie = Principal.for_user(acme_world.eddie)
    v1, v2 = snapshot(acme_world.line_1, "v1"), snapshot(acme_world.line_1, "v2")
    t1 = device_set_target(principal=eddie, device=press.device, snapshot=v1)
    t2 = device_set_target(principal=eddie, device=press.device, snapshot=v2)
    start = timezone.now() - dt.timedelta(hours=3)
    for hours, target in ((2, t1), (1, t2)):
        DeviceStateChange.objects.create(
            device=press.device,
            at=start + dt.timedelta(hours=3 - hours),
            status=DeviceStatus.ONLINE,
            active_target=target,
            snapshot=target.snapshot,
        )
    at = start + dt.timedelta(hours=1, minutes=30)  # after v1 became active, before v2
    assert device_state_at(press.device, at).snapshot_id == v1.pk  # type: ignore[union-attr]  # a row exists
    assert device_state_at(press.device, start) is None
    answer = vera_api.get(
        f"/api/v1/teams/acme/devices/{press.device.pk}/history/", {"at": at.isoformat()}
    )
    assert answer.status_code == 200, answer.json()
    assert answer.json()["active"]["snapshot"] == v1.pk
    assert answer.json()["active"]["generation"] == t1.generation
    assert [row["snapshot"] for row in answer.json()["history"]] == [v2.pk, v1.pk]
    bad = vera_api.get(f"/api/v1/teams/acme/devices/{press.device.pk}/history/", {"at": "noon"})
    assert bad.status_code == 400
