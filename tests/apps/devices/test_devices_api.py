"""The team's fleet API: lists and filters (no N+1), application-scoped visibility, updates whose
relations must stay in the team (family 2), all-or-nothing bulk actions, suspend / resume /
decommission / delete with their audit rows and the messages to the device's live link and the
team's browsers, provisioning tokens, registration codes and device groups."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.core import realtime
from apps.core.realtime import team_group_name
from apps.devices.bus import LINK_COMMAND
from apps.devices.models import Device, DeviceGroup, ProvisioningToken
from apps.devices.selectors import device_effective_env
from apps.devices.services import (
    device_register,
    device_update,
    provisioning_token_create,
)
from apps.teams.services import application_create, application_override_set
from tests.conftest import Acme, Globex
from tests.routes import Fleet, build_fleet

KEY = base64.b64encode(b"k" * 32).decode()
DEVICES = "/api/v1/teams/acme/devices/"


@pytest.fixture
def fleet(acme_world: Acme, globex_world: Globex) -> Fleet:
    return build_fleet(acme_world, globex_world)


def add_devices(acme: Acme, count: int, **token_fields: Any) -> list[Device]:
    _, raw = provisioning_token_create(
        principal=Principal.for_user(acme.olivia), team=acme.team, name="more", **token_fields
    )
    return [
        device_register(token=raw, name=f"Extra {i:02}", sealing_key_b64=KEY)[0]
        for i in range(count)
    ]


def events(*names: str) -> list[tuple[str, str]]:
    """(event, target id) of the audit rows with these names, oldest first."""
    rows = AuditEvent.objects.filter(event__in=names).order_by("id")
    return list(rows.values_list("event", "target_id"))


def snapshot_of(team_devices: Any) -> list[tuple[Any, ...]]:
    return list(
        team_devices.order_by("pk").values_list(
            "pk", "name", "application_id", "tags", "env", "status", "suspended"
        )
    )


# --- the live link and the browsers hear about changes ---------------------------------------


class Sent:
    """What services hand to the channel layer after commit, by group (the layer's own delivery
    is tested with the layer)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def record(self, group: str, message: dict[str, Any]) -> None:
        self.messages.append((group, message))

    def to(self, group: str) -> list[dict[str, Any]]:
        found = [message for name, message in self.messages if name == group]
        self.messages = [(name, m) for name, m in self.messages if name != group]
        return found


@pytest.fixture
def sent() -> Iterator[Sent]:
    recorder = Sent()
    with (
        mock.patch.object(realtime._SENDER, "submit", side_effect=recorder.record),
        mock.patch.object(realtime._SENDER, "submit_channel", side_effect=recorder.record),
    ):
        yield recorder


LINK = "specific.link-of-motor-3!a1"


def linked(device: Device) -> Device:
    """As if the device's live link had said hello on channel ``LINK``."""
    Device.objects.filter(pk=device.pk).update(link_channel=LINK)
    device.refresh_from_db()
    return device


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    return lambda: django_capture_on_commit_callbacks(execute=True)


# --- lists ----------------------------------------------------------------------------------


def test_the_list_shows_the_documented_fields(fleet: Fleet, olivia_api: APIClient) -> None:
    response = olivia_api.get(DEVICES)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3  # Motor 3, Spare and Press 9 (in developer mode)
    motor = next(row for row in body["results"] if row["id"] == fleet.device.pk)
    assert {
        "id",
        "name",
        "status",
        "last_seen",
        "active_snapshot",
        "target_snapshot",
        "tags",
        "application",
        "groups",
        "agent_version",
    } <= set(motor)
    assert motor["application"] == {
        "id": fleet.device.application_id,
        "slug": "line-1",
        "name": "Line 1",
    }
    assert (motor["active_snapshot"], motor["target_snapshot"], motor["groups"]) == (None, None, [])
    assert "Globex press" not in response.content.decode()


def test_filters_narrow_the_list(fleet: Fleet, acme_world: Acme, olivia_api: APIClient) -> None:
    olivia = Principal.for_user(acme_world.olivia)
    device_update(
        principal=olivia, device=fleet.device, tags=["line-3", "PRD"], groups=[fleet.group]
    )
    device_update(principal=olivia, device=fleet.paused, tags=["line-30"], env={"A": "1"})

    def names(**params: Any) -> list[str]:
        response = olivia_api.get(DEVICES, params)
        assert response.status_code == 200, response.content
        return [row["name"] for row in response.json()["results"]]

    assert names() == ["Motor 3", "Press 9", "Spare"]
    assert names(application="line-1") == ["Motor 3", "Press 9"]
    assert names(group=fleet.group.pk) == ["Motor 3"]
    assert names(tag="line-3") == ["Motor 3"]
    assert names(tag="line") == []
    assert names(status="suspended") == ["Spare"]
    assert names(q="spa") == ["Spare"]
    assert names(q="motor", tag="PRD", status="offline") == ["Motor 3"]
    assert olivia_api.get(DEVICES, {"status": "bogus"}).status_code == 400
    assert olivia_api.get(DEVICES, {"application": "hq"}).status_code == 404
    assert olivia_api.get(DEVICES, {"group": fleet.globex_group.pk}).status_code == 404


def test_the_list_costs_the_same_queries_for_1_or_30_devices(
    fleet: Fleet, acme_world: Acme, olivia_api: APIClient
) -> None:
    device_update(
        principal=Principal.for_user(acme_world.olivia), device=fleet.device, groups=[fleet.group]
    )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert olivia_api.get(DEVICES, {"limit": 100}).status_code == 200
        return len(captured.captured_queries)

    few = queries()
    for device in add_devices(acme_world, 30, application=acme_world.line_1):
        device.groups.add(fleet.group)
    many = queries()
    print(f"device list queries: {few} for 2 devices, {many} for 32 devices")
    assert many == few


def test_no_access_to_an_application_hides_its_devices(
    fleet: Fleet, acme_world: Acme, vera_api: APIClient, eddie_api: APIClient
) -> None:
    olivia = Principal.for_user(acme_world.olivia)
    from apps.teams.models import Membership

    vera = Membership.objects.get(team=acme_world.team, user=acme_world.vera)
    eddie = Membership.objects.get(team=acme_world.team, user=acme_world.eddie)
    application_override_set(
        principal=olivia, membership=vera, application=acme_world.line_1, role="none"
    )
    application_override_set(
        principal=olivia, membership=eddie, application=acme_world.line_1, role="viewer"
    )
    listed = [row["name"] for row in vera_api.get(DEVICES).json()["results"]]
    assert listed == ["Spare"]
    motor = f"{DEVICES}{fleet.device.pk}/"
    assert vera_api.get(motor).status_code == 404
    assert vera_api.get(DEVICES, {"application": "line-1"}).status_code == 404
    # eddie may read line-1's devices there but no longer manage them.
    assert eddie_api.get(motor).status_code == 200
    before = snapshot_of(Device.objects.all())
    assert eddie_api.patch(motor, {"name": "x"}, format="json").status_code == 403
    assert eddie_api.post(f"{motor}suspend/").status_code == 403
    bulk = {"action": "suspend", "ids": [fleet.paused.pk, fleet.device.pk]}
    assert eddie_api.post(f"{DEVICES}bulk/", bulk, format="json").status_code == 403
    assert snapshot_of(Device.objects.all()) == before
    # eddie still manages the device outside line-1.
    assert (
        eddie_api.patch(f"{DEVICES}{fleet.paused.pk}/", {"name": "y"}, format="json").status_code
        == 200
    )


# --- updates: relations stay inside the team (family 2) ---------------------------------------


def test_patch_changes_what_it_names_and_audits(
    fleet: Fleet, acme_world: Acme, olivia_api: APIClient
) -> None:
    line_2 = application_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Line 2",
        slug="line-2",
    )
    url = f"{DEVICES}{fleet.device.pk}/"
    body = {
        "name": "Motor 4",
        "tags": ["PRD", "line-3"],
        "env": {"SPEED": "10"},
        "application": "line-2",
        "groups": [fleet.group.pk],
    }
    response = olivia_api.patch(url, body, format="json")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["name"] == "Motor 4"
    assert answer["application"]["slug"] == "line-2"
    assert answer["groups"] == [{"id": fleet.group.pk, "name": "Presses"}]
    assert answer["tags"] == ["PRD", "line-3"]
    assert answer["env"] == {"SPEED": "10"}
    fleet.device.refresh_from_db()
    assert fleet.device.application == line_2
    row = AuditEvent.objects.filter(event="device.device.updated").get()
    assert row.before is not None
    assert row.after is not None
    assert row.before["name"] == "Motor 3"
    assert row.after["application"] == "line-2"
    assert row.application_key == line_2.pk
    # Nothing left to change: no second audit row.
    assert olivia_api.patch(url, body, format="json").status_code == 200
    assert AuditEvent.objects.filter(event="device.device.updated").count() == 1
    # null takes the device out of any application.
    response = olivia_api.patch(url, {"application": None}, format="json")
    assert response.status_code == 200
    assert response.json()["application"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "application": "hq"},
        {"name": "x", "groups": ["GLOBEX"]},
        {"name": "x", "groups": ["OWN", "GLOBEX"]},
        {"name": "x", "groups": [987654321]},
        {"name": "x", "tags": ["no spaces"]},
        {"name": "x", "env": {"1BAD": "v"}},
        {"name": " "},
    ],
)
def test_patch_refuses_foreign_relations_and_bad_values_changing_nothing(
    fleet: Fleet, olivia_api: APIClient, body: dict[str, Any]
) -> None:
    ids = {"GLOBEX": fleet.globex_group.pk, "OWN": fleet.group.pk}
    if "groups" in body:
        body = body | {"groups": [ids.get(g, g) for g in body["groups"]]}
    before = snapshot_of(Device.objects.all()), list(fleet.device.groups.all())
    audit_rows = AuditEvent.objects.count()
    response = olivia_api.patch(f"{DEVICES}{fleet.device.pk}/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"]
    assert (snapshot_of(Device.objects.all()), list(fleet.device.groups.all())) == before
    assert AuditEvent.objects.count() == audit_rows


def test_another_team_s_device_is_404_for_every_action(fleet: Fleet, olivia_api: APIClient) -> None:
    url = f"{DEVICES}{fleet.globex_device.pk}/"
    before = snapshot_of(Device.objects.all())
    assert olivia_api.get(url).status_code == 404
    assert olivia_api.patch(url, {"name": "mine"}, format="json").status_code == 404
    assert olivia_api.delete(url).status_code == 404
    for verb in ("suspend", "resume", "decommission"):
        assert olivia_api.post(f"{url}{verb}/").status_code == 404
    assert snapshot_of(Device.objects.all()) == before


# --- bulk: all or nothing ---------------------------------------------------------------------


@pytest.mark.parametrize("action", ["tag", "untag", "move", "suspend", "resume", "delete"])
def test_a_foreign_id_in_a_bulk_action_changes_nothing(
    fleet: Fleet, olivia_api: APIClient, action: str
) -> None:
    body: dict[str, Any] = {
        "action": action,
        "ids": [fleet.device.pk, fleet.paused.pk, fleet.globex_device.pk],
        "tags": ["x"],
        "application": None,
    }
    before = snapshot_of(Device.objects.all())
    audit_rows = AuditEvent.objects.count()
    response = olivia_api.post(f"{DEVICES}bulk/", body, format="json")
    assert response.status_code == 404
    assert snapshot_of(Device.objects.all()) == before
    assert AuditEvent.objects.count() == audit_rows


def test_bulk_actions_change_every_device_and_audit_each(
    fleet: Fleet, acme_world: Acme, olivia_api: APIClient
) -> None:
    extra = add_devices(acme_world, 2)
    ids = [fleet.device.pk, *[device.pk for device in extra]]
    bulk = f"{DEVICES}bulk/"

    def run(body: dict[str, Any]) -> dict[str, Any]:
        response = olivia_api.post(bulk, body, format="json")
        assert response.status_code == 200, response.content
        result: dict[str, Any] = response.json()
        return result

    assert run({"action": "tag", "ids": ids, "tags": ["PRD", "line-3"]})["count"] == 3
    assert all(set(d.tags) == {"PRD", "line-3"} for d in Device.objects.filter(pk__in=ids))
    run({"action": "untag", "ids": ids, "tags": ["PRD"]})
    assert all(d.tags == ["line-3"] for d in Device.objects.filter(pk__in=ids))
    moved = run({"action": "move", "ids": ids, "application": "line-1"})["devices"]
    assert {row["application"]["slug"] for row in moved} == {"line-1"}
    run({"action": "suspend", "ids": ids})
    assert set(Device.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"suspended"}
    run({"action": "resume", "ids": ids})
    assert not Device.objects.filter(pk__in=ids, suspended=True).exists()
    assert run({"action": "delete", "ids": ids}) == {"action": "delete", "count": 3, "devices": []}
    assert not Device.objects.filter(pk__in=ids).exists()
    for name in ("updated", "suspended", "resumed", "decommissioned", "deleted"):
        audited = {target for _, target in events(f"device.device.{name}")}
        assert {str(pk) for pk in ids} <= audited, name
    bad = olivia_api.post(bulk, {"action": "move", "ids": [fleet.paused.pk]}, format="json")
    assert bad.status_code == 400
    assert "application" in bad.json()["error"]["fields"]
    bad = olivia_api.post(
        bulk, {"action": "move", "ids": [fleet.paused.pk], "application": "hq"}, format="json"
    )
    assert bad.status_code == 400


# --- suspend, resume, decommission, delete ----------------------------------------------------


def test_each_state_change_is_audited_and_told_to_the_link_and_the_team(
    fleet: Fleet, olivia_api: APIClient, on_commit: Callable[[], Any], sent: Sent
) -> None:
    device = linked(fleet.device)
    url = f"{DEVICES}{device.pk}/"
    steps = [("suspend", "suspended"), ("resume", "offline"), ("decommission", "decommissioned")]
    for verb, status in steps:
        with on_commit():
            response = olivia_api.post(f"{url}{verb}/")
        assert response.status_code == 200, response.content
        assert response.json()["status"] == status
        (command,) = sent.to(LINK)
        assert command["type"] == LINK_COMMAND
        assert command["command"] == verb
        kinds = {message["kind"]: message for message in sent.to(team_group_name(device.team_id))}
        change = kinds["device.state.changed"]
        assert change["payload"]["status"] == status
        assert change["payload"]["id"] == device.pk
        assert change["permission"] == "device:read"
        assert change["application_id"] == device.application_id
    audited = events(
        "device.device.suspended", "device.device.resumed", "device.device.decommissioned"
    )
    assert [event for event, target in audited if target == str(device.pk)] == [
        "device.device.suspended",
        "device.device.resumed",
        "device.device.decommissioned",
    ]
    # A decommissioned device takes no more commands.
    for verb in ("suspend", "resume", "decommission"):
        assert olivia_api.post(f"{url}{verb}/").status_code == 409


def test_delete_decommissions_then_removes_the_row(
    fleet: Fleet, olivia_api: APIClient, on_commit: Callable[[], Any], sent: Sent
) -> None:
    linked(fleet.device)
    with on_commit():
        assert olivia_api.delete(f"{DEVICES}{fleet.device.pk}/").status_code == 204
    assert not Device.objects.filter(pk=fleet.device.pk).exists()
    (command,) = sent.to(LINK)
    assert command["command"] == "decommission"
    assert [
        event for event, _ in events("device.device.decommissioned", "device.device.deleted")
    ] == [
        "device.device.decommissioned",
        "device.device.deleted",
    ]


# --- provisioning tokens, registration codes, groups ------------------------------------------


def test_a_provisioning_token_is_shown_once_and_revoked_by_delete(
    fleet: Fleet, olivia_api: APIClient
) -> None:
    tokens = "/api/v1/teams/acme/provisioning-tokens/"
    response = olivia_api.post(
        tokens,
        {
            "name": "Line 1",
            "application": "line-1",
            "group": fleet.group.pk,
            "max_uses": 2,
            "tags": ["PRD"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    raw = created["token"]
    assert raw.startswith("mft_")
    assert created["prefix"] == raw[:10]
    assert created["application"]["slug"] == "line-1"
    assert created["group"]["name"] == "Presses"
    listing = olivia_api.get(tokens)
    assert raw not in listing.content.decode()
    assert listing.json()["count"] == 3
    assert olivia_api.get(f"{tokens}{created['id']}/").json()["uses"] == 0
    device, _ = device_register(token=raw, sealing_key_b64=KEY, name="via API")
    assert device.application_id == fleet.device.application_id
    assert device.tags == ["PRD"]
    assert olivia_api.delete(f"{tokens}{created['id']}/").status_code == 204
    assert ProvisioningToken.objects.get(pk=created["id"]).revoked_at is not None
    assert olivia_api.delete(f"{tokens}{created['id']}/").status_code == 409
    foreign_group = {"name": "t", "group": fleet.globex_group.pk}
    assert olivia_api.post(tokens, foreign_group, format="json").status_code == 400
    assert olivia_api.get("/api/v1/teams/globex/provisioning-tokens/").status_code == 404


def test_a_registration_code_comes_with_its_pending_device(
    fleet: Fleet, olivia_api: APIClient
) -> None:
    url = f"{DEVICES}registration-codes/"
    response = olivia_api.post(
        url, {"name": "Oven 2", "application": "line-1", "groups": [fleet.group.pk]}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["code"].startswith("MFR-")
    assert len(body["code"]) == 18
    assert body["device"]["status"] == "pending"
    assert body["device"]["groups"][0]["name"] == "Presses"
    assert body["device"]["registration_code_expires_at"]
    foreign = {"name": "Oven 3", "groups": [fleet.group.pk, fleet.globex_group.pk]}
    before = Device.objects.count()
    assert olivia_api.post(url, foreign, format="json").status_code == 400
    assert Device.objects.count() == before


def test_device_groups_and_the_effective_env(
    fleet: Fleet, acme_world: Acme, olivia_api: APIClient
) -> None:
    groups = "/api/v1/teams/acme/device-groups/"
    response = olivia_api.post(
        groups, {"name": "Line 1", "env": {"LINE": "1", "SPEED": "5"}}, format="json"
    )
    assert response.status_code == 201, response.content
    line = DeviceGroup.objects.get(pk=response.json()["id"])
    assert olivia_api.post(groups, {"name": "Line 1"}, format="json").status_code == 400
    olivia = Principal.for_user(acme_world.olivia)
    device = device_update(
        principal=olivia, device=fleet.device, groups=[line, fleet.group], env={"SPEED": "9"}
    )
    patched = olivia_api.patch(
        f"{groups}{fleet.group.pk}/", {"env": {"ZONE": "A", "LINE": "2"}}, format="json"
    )
    assert patched.status_code == 200
    # Groups by name ("Line 1" < "Presses": Presses wins LINE); the device's own value wins.
    assert device_effective_env(device) == {"LINE": "2", "SPEED": "9", "ZONE": "A"}
    assert olivia_api.get(groups).json()["count"] == 2
    assert olivia_api.delete(f"{groups}{line.pk}/").status_code == 204
    assert device_effective_env(device) == {"LINE": "2", "SPEED": "9", "ZONE": "A"}
    assert olivia_api.get(f"{groups}{fleet.globex_group.pk}/").status_code == 404
    names = [
        event
        for event, _ in events(
            "device.group.created", "device.group.updated", "device.group.deleted"
        )
    ]
    assert names[-3:] == ["device.group.created", "device.group.updated", "device.group.deleted"]


def test_viewers_read_but_do_not_manage(fleet: Fleet, vera_api: APIClient) -> None:
    assert vera_api.get(DEVICES).status_code == 200
    assert vera_api.get("/api/v1/teams/acme/device-groups/").status_code == 200
    before = snapshot_of(Device.objects.all())
    assert (
        vera_api.patch(f"{DEVICES}{fleet.device.pk}/", {"name": "v"}, format="json").status_code
        == 403
    )
    assert (
        vera_api.post(f"{DEVICES}registration-codes/", {"name": "v"}, format="json").status_code
        == 403
    )
    assert snapshot_of(Device.objects.all()) == before
