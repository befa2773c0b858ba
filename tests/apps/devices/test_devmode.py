"""Developer mode on the platform side, against a real server and a scripted runner on a real
link: the relay (answers forwarded to the caller, bounded, refused while suspended or before
hello), the refusals of the API (viewer, not in developer mode, offline, timeout, invalid flows,
credentials, deploys while developing), the credentials sent sealed to the device and kept
for "leave keep", and the audit rows. The real agent's side is in
tests/e2e/test_device_developer_mode.py."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import pytest
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers
from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.devices import bus
from apps.devices.consumers import DEV_PENDING_MAX
from apps.devices.models import DeveloperCredentials, Device
from apps.devices.services import devmode
from apps.devices.services.devmode import device_developer_mode_enter
from apps.devices.services.targets import device_set_target
from apps.snapshots import keys
from apps.snapshots.models import Snapshot
from apps.snapshots.services import snapshot_create, snapshot_credentials, team_key_rotate
from edge_runner.protocol import manifest
from tests.apps.devices.linkworld import (
    FLOWS,
    Registered,
    Runner,
    open_link,
    register,
    server,
    snapshot,
)
from tests.apps.devices.test_link import db, until
from tests.conftest import Acme
from tests.test_secrets_canary import _database_text

pytestmark = [pytest.mark.django_db(transaction=True)]
__all__ = ["server"]


def url(device: Device, tail: str) -> str:
    return f"/api/v1/teams/acme/devices/{device.pk}/{tail}"


def developing(acme: Acme, name: str = "press-1") -> tuple[Device, str]:
    """A registered device of line-1 in developer mode, and its credential (for the link)."""
    registered = register(acme.line_1, name)
    device = device_developer_mode_enter(
        principal=Principal.for_user(acme.eddie), device=registered.device
    )
    return device, registered.credential


async def answer_one(runner: Runner, status: int, body: Any) -> dict[str, Any]:
    request = await runner.expect("dev_request")
    await runner.send(
        {"type": "dev_result", "request": request["request"], "status": status, "body": body}
    )
    return request


def test_a_call_goes_to_the_device_and_its_answer_comes_back(
    acme_world: Acme, server: str, eddie_api: APIClient
) -> None:
    device, credential = developing(acme_world)

    async def scenario() -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
        runner, _ = await Runner.join(server, credential)
        read = asyncio.create_task(db(lambda: eddie_api.get(url(device, "flows/"))))
        asked = await answer_one(runner, 200, {"flows": FLOWS, "rev": "r1"})
        flows = await read
        sent = asyncio.create_task(
            db(lambda: eddie_api.post(url(device, "flows/"), FLOWS, format="json"))
        )
        posted = await answer_one(runner, 200, {"rev": "r2"})
        deployed = await sent
        await runner.socket.close()
        return flows, asked, deployed, posted

    flows, asked, deployed, posted = asyncio.run(scenario())
    assert (asked["method"], asked["path"]) == ("GET", "/flows")
    assert flows.status_code == 200, flows.json()
    assert flows.json() == {"flows": FLOWS, "rev": "r1"}
    assert (posted["method"], posted["path"]) == ("POST", "/flows")
    assert posted["body"] == {"flows": FLOWS}
    assert deployed.json() == {"rev": "r2"}
    assert AuditEvent.objects.filter(event="device.developer_mode.deployed").count() == 1


def test_refusals_change_nothing_and_reach_no_device(
    acme_world: Acme, server: str, eddie_api: APIClient, vera_api: APIClient
) -> None:
    device, credential = developing(acme_world)
    other = register(acme_world.line_1, "press-2").device
    v1 = snapshot(acme_world.line_1)

    async def scenario() -> dict[str, Any]:
        runner, _ = await Runner.join(server, credential)
        answers = {
            "viewer": await db(lambda: vera_api.post(url(device, "developer-mode/"))),
            "viewer flows": await db(lambda: vera_api.get(url(device, "flows/"))),
            "not developing": await db(lambda: eddie_api.get(url(other, "flows/"))),
            "offline": await db(lambda: eddie_api.get(url(other, "flows/state/"))),
            "invalid": await db(
                lambda: eddie_api.post(
                    url(device, "flows/"),
                    [{"id": "a", "type": "tab"}, {"id": "a", "type": "tab"}],
                    format="json",
                )
            ),
            "credentials": await db(
                lambda: eddie_api.post(
                    url(device, "flows/"),
                    [*FLOWS, {"id": "b", "type": "mqtt-broker", "credentials": {"user": 7}}],
                    format="json",
                )
            ),
            "bad node id": await db(lambda: eddie_api.post(url(device, "inject/a%20b/"))),
            "deploy": await db(
                lambda: eddie_api.post(url(device, "target/"), {"snapshot": v1.pk}, format="json")
            ),
            "leave twice": await db(
                lambda: eddie_api.delete(url(other, "developer-mode/"), {"keep": False}, "json")
            ),
        }
        with pytest.raises(TimeoutError):  # none of them reached the device
            await runner.expect("dev_request", within=0.5)
        await runner.socket.close()
        return answers

    before = AuditEvent.objects.count()
    answers = asyncio.run(scenario())
    codes = {name: (r.status_code, r.json()["error"]["code"]) for name, r in answers.items()}
    assert codes == {
        "viewer": (403, "permission_denied"),
        "viewer flows": (403, "permission_denied"),
        "not developing": (409, "not_in_developer_mode"),
        "offline": (409, "not_in_developer_mode"),
        "invalid": (400, "invalid_flows"),
        "credentials": (400, "invalid_credentials"),
        "bad node id": (400, "invalid"),
        "deploy": (409, "developer_mode"),
        "leave twice": (409, "not_in_developer_mode"),
    }
    assert "duplicate node id" in answers["invalid"].json()["error"]["message"]
    assert AuditEvent.objects.count() == before
    assert Device.objects.get(pk=device.pk).target_id is None
    # Offline in developer mode: a clear 409, not a wait.
    device_developer_mode_enter(principal=Principal.for_user(acme_world.eddie), device=other)
    offline = eddie_api.get(url(other, "flows/"))
    assert (offline.status_code, offline.json()["error"]["code"]) == (409, "device_offline")


def test_a_device_that_does_not_answer_is_a_504(
    acme_world: Acme, server: str, eddie_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    device, credential = developing(acme_world)
    monkeypatch.setattr(devmode, "DEV_CALL_SECONDS", 0.5)

    async def scenario() -> Any:
        runner, _ = await Runner.join(server, credential)
        answer = await db(lambda: eddie_api.get(url(device, "flows/state/")))
        late = await runner.expect("dev_request")
        # The late answer finds nobody waiting any more: dropped without harm.
        await runner.send(
            {"type": "dev_result", "request": late["request"], "status": 200, "body": {}}
        )
        await runner.socket.close()
        return answer

    answer = asyncio.run(scenario())
    assert (answer.status_code, answer.json()["error"]["code"]) == (504, "device_timeout")


def test_the_relay_is_bounded_and_refuses_before_hello_and_while_suspended(
    acme_world: Acme, server: str
) -> None:
    registered = register(acme_world.line_1, "press-1")
    # A layer of the test's own event loop (the server's is bound to the server's loop).
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    device_id = registered.device.pk

    async def ask(reply_to: str, request: str) -> None:
        command = bus.device_command(
            "dev_request", request=request, method="GET", path="/flows", body=None,
            reply_to=reply_to,
        )  # fmt: skip
        await layer.send(await db(lambda: bus.link_channel(device_id)), command)

    async def scenario() -> tuple[str, list[dict[str, Any]], dict[str, Any], str]:
        reply_to = await layer.new_channel()
        socket = await open_link(server, registered.credential)  # accepted, no hello yet
        await asyncio.sleep(0.2)
        early = await db(lambda: bus.link_channel(device_id))  # unreachable until its hello
        await socket.close()
        runner, _ = await Runner.join(server, registered.credential)
        await until(lambda: bool(bus.link_channel(device_id)))  # written just after the welcome
        for number in range(DEV_PENDING_MAX + 1):
            await ask(reply_to, f"r{number}")
        relayed = [await runner.expect("dev_request") for _ in range(DEV_PENDING_MAX)]
        busy = await asyncio.wait_for(layer.receive(reply_to), 5)
        # An answer to a request nobody made is refused with an error frame.
        await runner.send({"type": "dev_result", "request": "nobody", "status": 200})
        error = await runner.expect("error")
        await runner.socket.close()
        if hasattr(layer, "close_pools"):
            await layer.close_pools()
        return early, relayed, busy, error["message"]

    early, relayed, busy, error = asyncio.run(scenario())
    assert early == ""
    assert [frame["request"] for frame in relayed] == [f"r{n}" for n in range(DEV_PENDING_MAX)]
    assert (busy["request"], busy["status"], busy["body"]["code"]) == (
        f"r{DEV_PENDING_MAX}", 429, "device_busy",
    )  # fmt: skip
    assert error == "no request is pending"


def test_entering_needs_a_registered_active_device_and_is_audited(
    acme_world: Acme, eddie_api: APIClient
) -> None:
    device = register(acme_world.line_1, "press-1").device
    loose = register(None, "loose", team=acme_world.team).device
    entered = eddie_api.post(url(device, "developer-mode/"))
    assert entered.status_code == 200, entered.json()
    assert entered.json()["developer_mode"] is True
    again = eddie_api.post(url(device, "developer-mode/"))
    assert again.status_code == 200
    refused = eddie_api.post(url(loose, "developer-mode/"))
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "no_application")
    events = AuditEvent.objects.filter(event="device.developer_mode.entered")
    assert events.count() == 1
    v1 = snapshot(acme_world.line_1)
    with pytest.raises(Exception, match="developer mode"):
        device_set_target(
            principal=Principal.for_user(acme_world.eddie),
            device=Device.objects.get(pk=device.pk),
            snapshot=v1,
        )
    left = eddie_api.delete(url(device, "developer-mode/"), {"keep": False}, format="json")
    assert left.status_code == 200, left.json()
    assert left.json()["target"] is None  # nothing to revert to: the flag goes, no target
    after = AuditEvent.objects.get(event="device.developer_mode.left").after
    assert after is not None
    assert after["kept"] is False


# --- credentials in developer mode --------------------------------------------------------------

PARENT_CREDENTIALS = {
    "broker": {"user": "plc", "password": "old-Pa55-parent"},
    "historian": {"user": "hist", "password": "hist-Pa55-parent"},
}


def brokers(**credentials: dict[str, str]) -> list[dict[str, Any]]:
    """FLOWS with two MQTT brokers; ``credentials`` inline by node id, as an editor sends."""
    line: list[dict[str, Any]] = json.loads(json.dumps(FLOWS))
    nodes = [
        *line,
        {"id": "broker", "type": "mqtt-broker", "broker": "127.0.0.1"},
        {"id": "historian", "type": "mqtt-broker", "broker": "127.0.0.2"},
    ]
    return [
        {**node, "credentials": credentials[node["id"]]} if node["id"] in credentials else node
        for node in nodes
    ]


def developing_with_parent(acme: Acme) -> tuple[Registered, Snapshot]:
    """A registered device whose target is a snapshot with both brokers' credentials, in
    developer mode."""
    registered = register(acme.line_1, "press-1")
    parent = snapshot_create(
        principal=Principal.for_user(acme.olivia),
        application=acme.line_1,
        name="v1",
        flows=brokers(**PARENT_CREDENTIALS),
    )
    eddie = Principal.for_user(acme.eddie)
    device_set_target(principal=eddie, device=registered.device, snapshot=parent)
    device_developer_mode_enter(principal=eddie, device=Device.objects.get(pk=registered.device.pk))
    return registered, parent


async def deploy_answered(runner: Runner, api: APIClient, device: Device, flows: Any) -> Any:
    """POST the flows as the member and answer the device's request; the answer and the
    frame the device got."""
    sent = asyncio.create_task(db(lambda: api.post(url(device, "flows/"), flows, format="json")))
    frame = await answer_one(runner, 200, {"rev": "r"})
    return await sent, frame


def opened(registered: Registered, frame: dict[str, Any]) -> Any:
    sealed = base64.b64decode(frame["body"]["credentials_sealed"])
    return json.loads(
        manifest.unseal(
            sealed, private_key=registered.sealing_private, device=str(registered.device.pk)
        )
    )


def test_credentials_travel_sealed_to_the_device_and_leave_keep_lays_them_over_the_parent(
    acme_world: Acme, server: str, eddie_api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registered, parent = developing_with_parent(acme_world)
    device = registered.device
    new = {"password": "new-Pa55-canary"}

    async def scenario() -> tuple[Any, ...]:
        runner, _ = await Runner.join(server, registered.credential)
        first = await deploy_answered(runner, eddie_api, device, brokers(broker=new))
        row = await db(
            lambda: bytes(DeveloperCredentials.objects.get(device=device).credentials_sealed)
        )
        stored = await db(_database_text)
        # __PWRD__ keeps the password sent before; the user changes too.
        second = await deploy_answered(
            runner, eddie_api, device, brokers(broker={"user": "ops", "password": "__PWRD__"})
        )
        leave = asyncio.create_task(
            db(lambda: eddie_api.delete(url(device, "developer-mode/"), {"keep": True}, "json"))
        )
        asked = await answer_one(runner, 200, {"flows": brokers(), "rev": "r3"})
        left = await leave
        await runner.socket.close()
        return first, row, stored, second, asked, left

    (answer, frame), row, stored, (again, frame2), asked, left = asyncio.run(scenario())
    assert answer.status_code == 200, answer.json()
    assert again.status_code == 200, again.json()
    # What the device got: nodes without credentials, and a blob only its key opens.
    assert set(frame["body"]) == {"flows", "credentials_sealed"}
    assert all("credentials" not in node for node in frame["body"]["flows"])
    assert "new-Pa55-canary" not in json.dumps(frame)
    assert opened(registered, frame) == {"broker": new}
    assert opened(registered, frame2) == {"broker": {"user": "ops", "password": "__PWRD__"}}
    # Kept sealed with the team's data key, under a purpose of its own; in no row, no log.
    assert b"new-Pa55-canary" not in row
    assert "new-Pa55-canary" not in stored
    assert "devices_developercredentials" in stored  # the table was read
    assert not [r for r in caplog.records if "new-Pa55-canary" in r.getMessage()]
    with pytest.raises(keys.KeyIntegrityError):
        keys.unseal(
            row,
            key=keys.data_key(keys.team_key(acme_world.team)),
            team_id=acme_world.team.pk,
            purpose=keys.CREDENTIALS_PURPOSE,
        )
    # Audited by node id only.
    deployed = AuditEvent.objects.filter(event="device.developer_mode.deployed").order_by("id")
    assert [event.after["sealed_nodes"] for event in deployed] == [["broker"], ["broker"]]  # type: ignore[index]  # the service writes after
    assert "canary" not in json.dumps([event.after for event in AuditEvent.objects.all()])
    # Leave keep: the parent's credentials with the ones sent laid over them, field by field.
    assert (asked["method"], asked["path"]) == ("GET", "/flows")
    assert left.status_code == 200, left.json()
    kept = Snapshot.objects.get(pk=left.json()["snapshot"])
    assert kept.parent_id == parent.pk
    assert snapshot_credentials(kept) == {
        "broker": {"user": "ops", "password": "new-Pa55-canary"},
        "historian": PARENT_CREDENTIALS["historian"],
    }
    assert not DeveloperCredentials.objects.filter(device=device).exists()
    # The kept snapshot's target carries them, sealed to the device.
    target = Device.objects.get(pk=device.pk).target
    assert target is not None
    assert target.snapshot_id == kept.pk
    carried = manifest.unseal(
        bytes(target.credentials_sealed),
        private_key=registered.sealing_private,
        device=str(device.pk),
    )
    assert json.loads(carried)["broker"]["password"] == "new-Pa55-canary"


def test_a_removed_node_loses_its_credentials_a_key_rotation_reseals_and_revert_drops_them(
    acme_world: Acme, server: str, eddie_api: APIClient
) -> None:
    registered, _ = developing_with_parent(acme_world)
    device = registered.device
    olivia = Principal.for_user(acme_world.olivia)

    def kept() -> tuple[dict[str, Any], str]:
        row = DeveloperCredentials.objects.select_related("credentials_key").get(device=device)
        return devmode._developer_credentials_open(row), row.credentials_key.key_id

    async def scenario() -> tuple[Any, ...]:
        runner, _ = await Runner.join(server, registered.credential)
        await deploy_answered(
            runner,
            eddie_api,
            device,
            brokers(broker={"password": "b-Pa55"}, historian={"password": "h-Pa55"}),
        )
        both = await db(kept)
        # A rotation retires the row's key; the row still opens, and the next deploy
        # re-seals it with the new key.
        rotated = await db(lambda: team_key_rotate(principal=olivia, team=acme_world.team))
        after_rotation = await db(kept)
        without = [node for node in brokers() if node["id"] != "historian"]
        await deploy_answered(runner, eddie_api, device, without)
        one = await db(kept)
        reverted = await db(
            lambda: eddie_api.delete(url(device, "developer-mode/"), {"keep": False}, "json")
        )
        await runner.socket.close()
        return both, rotated.key_id, after_rotation, one, reverted

    both, new_key, after_rotation, one, reverted = asyncio.run(scenario())
    assert both[0] == {"broker": {"password": "b-Pa55"}, "historian": {"password": "h-Pa55"}}
    assert after_rotation == both
    assert both[1] != new_key
    assert one == ({"broker": {"password": "b-Pa55"}}, new_key)
    assert reverted.status_code == 200, reverted.json()
    assert not DeveloperCredentials.objects.filter(device=device).exists()


@pytest.mark.parametrize(
    ("credentials", "says"),
    [
        (["user", "password"], "must be an object"),
        ({"password": 1883}, "must be text"),
        ({"": "x"}, "field name is 1 to"),
        ({f"f{n}": "x" for n in range(devmode.MAX_CREDENTIAL_FIELDS + 1)}, "credential fields"),
        ({"certdata": "x" * (devmode.MAX_CREDENTIAL_VALUE + 1)}, "over"),
    ],
)
def test_malformed_credentials_are_a_400_and_reach_no_device(
    acme_world: Acme, server: str, eddie_api: APIClient, credentials: Any, says: str
) -> None:
    registered, _ = developing_with_parent(acme_world)
    device = registered.device

    async def scenario() -> Any:
        runner, _ = await Runner.join(server, registered.credential)
        answer = await db(
            lambda: eddie_api.post(
                url(device, "flows/"), brokers(broker=credentials), format="json"
            )
        )
        with pytest.raises(TimeoutError):
            await runner.expect("dev_request", within=0.3)
        await runner.socket.close()
        return answer

    before = AuditEvent.objects.count()
    answer = asyncio.run(scenario())
    error = answer.json()["error"]
    assert (answer.status_code, error["code"]) == (400, "invalid_credentials")
    assert says in error["message"]
    assert "broker" in error["message"]
    assert AuditEvent.objects.count() == before
    assert not DeveloperCredentials.objects.exists()


def test_too_many_credentials_in_all_are_a_400(acme_world: Acme) -> None:
    big = "x" * devmode.MAX_CREDENTIAL_VALUE
    flows = [
        {"id": f"b{n}", "type": "mqtt-broker", "broker": "h", "credentials": {"password": big}}
        for n in range(3)
    ]
    with pytest.raises(Exception, match="bytes; at most") as raised:
        devmode.clean_dev_flows(flows)
    assert getattr(raised.value, "code", None) == "invalid_credentials"
    many = [
        {"id": f"b{n}", "type": "mqtt-broker", "broker": "h", "credentials": {"user": "u"}}
        for n in range(devmode.MAX_CREDENTIAL_NODES + 1)
    ]
    with pytest.raises(Exception, match="nodes carry credentials"):
        devmode.clean_dev_flows(many)


def test_a_device_without_a_sealing_key_gets_no_credentials(
    acme_world: Acme, server: str, eddie_api: APIClient
) -> None:
    registered, _ = developing_with_parent(acme_world)
    device = registered.device
    Device.objects.filter(pk=device.pk).update(sealing_public_key=b"")

    async def scenario() -> Any:
        runner, _ = await Runner.join(server, registered.credential)
        answer = await db(
            lambda: eddie_api.post(
                url(device, "flows/"), brokers(broker={"password": "p"}), format="json"
            )
        )
        with pytest.raises(TimeoutError):
            await runner.expect("dev_request", within=0.3)
        await runner.socket.close()
        return answer

    answer = asyncio.run(scenario())
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "not_registered")
    assert not DeveloperCredentials.objects.exists()
