"""Snapshot services: validation before storage, credentials split and sealed, immutability,
the bytes and signatures devices receive, generations, deletion guarded by device targets."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connections, transaction

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.core.errors import Conflict, ValidationError
from apps.devices.models import Device, DeviceTarget
from apps.snapshots import keys, services
from apps.snapshots.models import ImmutableError, Snapshot, TeamGeneration
from apps.snapshots.services import FlowsRejected, snapshot_create
from apps.teams.models import Team
from edge_runner.protocol import manifest
from tests.apps.snapshots.conftest import CANARY, invalid_flows, valid_flows
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db


def _create(acme_world: Acme, **kwargs: Any) -> Snapshot:
    arguments: dict[str, Any] = {
        "principal": Principal.for_user(acme_world.eddie),
        "application": acme_world.line_1,
        "name": "v1",
        "flows": valid_flows(),
    }
    arguments.update(kwargs)
    return snapshot_create(**arguments)


def _counts() -> tuple[int, int]:
    return Snapshot.objects.count(), AuditEvent.objects.filter(event__contains="snapshot").count()


def test_a_valid_snapshot_is_stored_with_credentials_split_off(acme_world: Acme) -> None:
    snapshot = _create(acme_world, env={"LINE": "3"}, description="first")
    assert snapshot.author == acme_world.eddie
    assert all("credentials" not in node for node in snapshot.flows)
    assert CANARY not in json.dumps(snapshot.flows)
    assert CANARY.encode() not in bytes(snapshot.credentials_sealed)
    assert snapshot.credentials_key == keys.team_key(acme_world.team)
    assert services.snapshot_credentials(snapshot) == {"b1": {"user": "plant", "password": CANARY}}
    assert services.snapshot_credential_fields(snapshot) == {"b1": ["password", "user"]}
    event = AuditEvent.objects.get(event="team.snapshot.created")
    assert event.application_key == acme_world.line_1.pk
    assert event.after is not None
    assert event.after["digest"] == snapshot.digest
    assert event.after["nodes"] == 4


def test_credentials_may_come_beside_the_flows(acme_world: Acme) -> None:
    flows = valid_flows()
    inline = flows[1].pop("credentials")
    snapshot = _create(acme_world, flows={"flows": flows, "credentials": {"b1": inline}})
    assert services.snapshot_credentials(snapshot) == {"b1": inline}


def test_credentials_for_a_node_not_in_the_flows_are_refused(acme_world: Acme) -> None:
    before = _counts()
    with pytest.raises(ValidationError, match="'zz', not in the flows"):
        _create(acme_world, flows={"flows": valid_flows(), "credentials": {"zz": {"a": "b"}}})
    assert _counts() == before


def test_flows_a_runner_rejects_store_nothing(acme_world: Acme) -> None:
    before = _counts()
    with pytest.raises(FlowsRejected) as caught:
        _create(acme_world, flows=invalid_flows())
    assert caught.value.status_code == 400
    assert [p.node_id for p in caught.value.problems] == ["b9"]
    assert "b9 (mqtt-broker) port" in caught.value.fields["flows"][0]
    assert "port must be 1..65535" in caught.value.message
    assert _counts() == before


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"flows": {"nodes": []}}, "invalid", "flows.json array"),
        ({"flows": "[]"}, "invalid", "JSON array"),
        ({"flows": [{"id": str(i), "type": "tab"} for i in range(5001)]}, "too_many_nodes", "5001"),
        ({"env": {"1BAD": "x"}}, "invalid", "not a valid environment variable name"),
        ({"env": {"GOOD": 3}}, "invalid", "must be a string"),
        ({"env": ["A"]}, "invalid", "env must be an object"),
        ({"name": "  "}, "invalid", "name must be 1 to 100"),
        ({"model_refs": [{"name": "m", "sha256": "x", "size": 1}]}, "invalid", "64 hex"),
        ({"runner_settings": {"x": float("nan")}}, "invalid", "plain JSON"),
    ],
)
def test_bad_input_is_a_clear_400_and_stores_nothing(
    acme_world: Acme, kwargs: dict[str, Any], code: str, message: str
) -> None:
    before = _counts()
    with pytest.raises(ValidationError, match=message) as caught:
        _create(acme_world, **kwargs)
    assert caught.value.code == code
    assert caught.value.status_code == 400
    assert _counts() == before


def test_flows_above_5_mb_are_refused(acme_world: Acme) -> None:
    flows = [{"id": "t1", "type": "tab", "info": "x" * (5 * 1024 * 1024)}]
    with pytest.raises(ValidationError, match="at most 5242880") as caught:
        _create(acme_world, flows=flows)
    assert caught.value.code == "too_large"


def test_snapshots_are_immutable(acme_world: Acme) -> None:
    snapshot = _create(acme_world)
    snapshot.name = "changed"
    with pytest.raises(ImmutableError):
        snapshot.save()
    assert Snapshot.objects.get(pk=snapshot.pk).name == "v1"


def test_equal_content_has_an_equal_digest_whatever_the_credential_values(
    acme_world: Acme,
) -> None:
    first = _create(acme_world)
    second = _create(acme_world, flows=valid_flows(password="another"), name="v2")
    assert first.digest == second.digest
    third = _create(acme_world, env={"LINE": "3"}, name="v3")
    assert third.digest != first.digest
    flows = valid_flows()
    flows[1]["credentials"] = {"user": "plant"}  # one credential field fewer
    assert _create(acme_world, flows=flows, name="v4").digest != first.digest


def test_a_parent_of_another_application_is_refused(acme_world: Acme) -> None:
    from apps.teams.services import application_create

    other = application_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Line 2",
        slug="line-2",
    )
    parent = _create(acme_world, application=other)
    with pytest.raises(ValidationError, match="another application"):
        _create(acme_world, parent=parent)
    assert _create(acme_world, parent=_create(acme_world)).parent is not None


def test_tampered_sealed_credentials_are_a_hard_error(acme_world: Acme) -> None:
    snapshot = _create(acme_world)
    sealed = bytearray(bytes(snapshot.credentials_sealed))
    sealed[-3] ^= 0x40
    Snapshot.objects.filter(pk=snapshot.pk).update(credentials_sealed=bytes(sealed))
    with pytest.raises(keys.KeyIntegrityError):
        services.snapshot_credentials(Snapshot.objects.get(pk=snapshot.pk))


def test_sealed_credentials_copied_to_another_team_do_not_open(
    acme_world: Acme, globex_world: Globex
) -> None:
    snapshot = _create(acme_world)
    foreign = snapshot_create(
        principal=Principal.for_user(globex_world.oscar),
        application=globex_world.hq,
        name="g",
        flows=valid_flows(password="globex"),
    )
    Snapshot.objects.filter(pk=foreign.pk).update(
        credentials_sealed=bytes(snapshot.credentials_sealed)
    )
    with pytest.raises(keys.KeyIntegrityError):
        services.snapshot_credentials(Snapshot.objects.get(pk=foreign.pk))


def test_parts_are_canonical_bytes_without_credentials(acme_world: Acme) -> None:
    snapshot = _create(
        acme_world, env={"LINE": "3"}, runner_settings={"health": {"grace": 30}, "log": "debug"}
    )
    parts = services.snapshot_parts(snapshot)
    assert set(parts) == {"flows.json", "settings.json"}
    assert json.loads(parts["flows.json"]) == snapshot.flows
    assert json.loads(parts["settings.json"]) == {
        "env": {"LINE": "3"},
        "runner": {"log": "debug"},
        "health": {"grace": 30},
    }
    assert parts["flows.json"] == manifest.canonical_json(snapshot.flows)
    assert CANARY.encode() not in b"".join(parts.values())


def _target(team: Team, snapshot: Snapshot, generation: int) -> tuple[Device, dict[str, Any]]:
    device = Device.objects.create(team=team, name=f"press-{generation}")
    parts = manifest.build_parts(services.snapshot_parts(snapshot))
    envelope = services.sign_target(
        team=team,
        device_id=str(device.pk),
        snapshot=snapshot,
        generation=generation,
        parts_table=parts,
    )
    return device, envelope


def test_signed_targets_verify_on_the_device(acme_world: Acme) -> None:
    team = acme_world.team
    snapshot = _create(acme_world)
    device, envelope = _target(team, snapshot, 3)
    verified = manifest.verify(
        envelope,
        trusted_keys=services.team_signing_keys(team),
        team=str(team.pk),
        device=str(device.pk),
        min_generation=3,
    )
    assert verified.snapshot == str(snapshot.pk)
    assert verified.generation == 3
    assert verified.name == "v1"
    assert verified.part("flows.json") is not None
    with pytest.raises(manifest.ManifestError) as refused:
        manifest.verify(
            envelope,
            trusted_keys=services.team_signing_keys(team),
            team=str(team.pk),
            device="another",
        )
    assert refused.value.code == "wrong_device"


def test_a_snapshot_of_another_team_is_never_signed(acme_world: Acme, globex_world: Globex) -> None:
    snapshot = _create(acme_world)
    with pytest.raises(ValueError, match="another team"):
        services.sign_target(
            team=globex_world.team, device_id="1", snapshot=snapshot, generation=1, parts_table={}
        )


def test_after_rotation_new_targets_use_the_new_key_and_old_stays_listed_while_used(
    acme_world: Acme,
) -> None:
    team = acme_world.team
    snapshot = _create(acme_world)
    old_public = bytes(keys.team_key(team).signing_public)
    device, old_envelope = _target(team, snapshot, 1)
    target = DeviceTarget.objects.create(
        team=team,
        device=device,
        snapshot=snapshot,
        generation=1,
        envelope=old_envelope,
        digest="0" * 64,
    )
    Device.objects.filter(pk=device.pk).update(active_target=target)

    new = services.team_key_rotate(principal=Principal.for_user(acme_world.olivia), team=team)
    new_public = bytes(new.signing_public)
    assert services.team_signing_keys(team) == [new_public, old_public]
    _, new_envelope = _target(team, snapshot, 2)
    assert new_envelope["key_id"] == new.key_id != old_envelope["key_id"]
    # A device that pinned only the old key: the list signed with its key verifies there.
    document = services.signed_key_list(team, signer_key_id=old_envelope["key_id"])
    pinned = manifest.verify_keys(document, trusted_keys=[old_public], team=str(team.pk))
    assert pinned == [new_public, old_public]
    default = services.signed_key_list(team)
    assert default["key_id"] == new.key_id

    # Once no device's target uses the old key, it is no longer listed.
    Device.objects.filter(pk=device.pk).update(active_target=None)
    assert services.team_signing_keys(team) == [new_public]


def test_next_generation_grows_by_one(acme: Team) -> None:
    with transaction.atomic():
        values = [services.next_generation(acme) for _ in range(3)]
    assert values == [1, 2, 3]
    assert TeamGeneration.objects.get(team=acme).value == 3


def test_next_generation_is_strictly_increasing_under_concurrency(
    transactional_db: Any, globex_world: Globex
) -> None:
    team = globex_world.team
    with pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        services.next_generation(team)  # outside a transaction the lock would be worthless
    workers, per_worker = 6, 10
    barrier = threading.Barrier(workers)
    issued: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def issue() -> None:
        try:
            barrier.wait()
            for _ in range(per_worker):
                with transaction.atomic():
                    value = services.next_generation(team)
                with lock:
                    issued.append(value)
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=issue) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    total = workers * per_worker
    assert sorted(issued) == list(range(1, total + 1))  # no duplicate, no gap
    assert TeamGeneration.objects.get(team=team).value == total


def test_delete_is_refused_while_a_device_target_references_it(acme_world: Acme) -> None:
    team = acme_world.team
    snapshot = _create(acme_world)
    device, envelope = _target(team, snapshot, 1)
    DeviceTarget.objects.create(
        team=team, device=device, snapshot=snapshot, generation=1, envelope=envelope, digest="0"
    )
    principal = Principal.for_user(acme_world.eddie)
    with pytest.raises(Conflict, match="device's target") as caught:
        services.snapshot_delete(principal=principal, snapshot=snapshot)
    assert caught.value.status_code == 409
    assert Snapshot.objects.filter(pk=snapshot.pk).exists()
    assert not AuditEvent.objects.filter(event="team.snapshot.deleted").exists()

    unused = _create(acme_world, name="unused")
    services.snapshot_delete(principal=principal, snapshot=unused)
    assert not Snapshot.objects.filter(pk=unused.pk).exists()
    assert AuditEvent.objects.filter(event="team.snapshot.deleted").count() == 1
