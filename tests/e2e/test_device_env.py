"""Device and group env vars reach a real agent: a flow writes ``env.LINE`` to a file in the
runner's data directory; the snapshot's value is replaced by the group's when the device joins a
group, by the group's new one when the group's env is edited, and by the device's own."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from apps.accounts.principal import Principal
from apps.devices.models import Device, DeviceGroup, DeviceTarget
from apps.devices.services import device_group_add_devices
from apps.snapshots.services import snapshot_create
from tests.conftest import Acme
from tests.e2e.test_device_lifecycle import (
    QUICK_HEALTH,
    Agent,
    Platform,
    api,
    deploy,
    provision,
    settled,
    until,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GROUPS = "/api/v1/teams/acme/device-groups/"


def line_writer() -> list[dict[str, Any]]:
    """inject ``env LINE`` every 0.2 s -> write it over ``data/line.txt``."""
    return [
        {"id": "env-tab", "type": "tab", "label": "Env"},
        {"id": "env-in", "type": "inject", "z": "env-tab", "repeat": "0.2", "once": True,
         "props": [{"p": "payload"}], "payload": "LINE", "payloadType": "env",
         "wires": [["env-out"]]},
        {"id": "env-out", "type": "file", "z": "env-tab", "filename": "line.txt",
         "overwriteFile": "true", "appendNewline": False, "wires": []},
    ]  # fmt: skip


def test_group_and_device_env_reach_the_running_flow(
    acme_world: Acme, platform: Platform, agents: Callable[[], Agent]
) -> None:
    agent = agents()
    device_id = provision(acme_world, platform, agent, "press-env")
    written = agent.paths.node_data / "line.txt"
    olivia = api(acme_world.olivia)

    def applied_line(expected: str, what: str) -> float:
        """Seconds until the device's newest target applied and the flow wrote ``expected``."""
        started = time.monotonic()
        target = Device.objects.get(pk=device_id).target
        assert target is not None
        done = until(lambda: settled(target), 20, f"{what} applied\n{agent.output()}")
        assert done.outcome == "applied", (done.outcome, done.reason)
        until(
            lambda: written.is_file() and written.read_text() == expected,
            10,
            f"the flow writes {expected!r} ({what}); it wrote "
            f"{written.read_text() if written.is_file() else None!r}",
        )
        return time.monotonic() - started

    v1 = snapshot_create(
        principal=Principal.for_user(acme_world.eddie),
        application=acme_world.line_1,
        name="env v1",
        flows=line_writer(),
        env={"LINE": "from-snapshot"},
        runner_settings={"health": QUICK_HEALTH},
    )
    first = deploy(acme_world, device_id, v1)
    figures = {"snapshot": applied_line("from-snapshot", "the snapshot")}

    made = olivia.post(GROUPS, {"name": "hall-a", "env": {"LINE": "hall-a"}}, format="json")
    assert made.status_code == 201, made.json()
    group = DeviceGroup.objects.get(pk=made.json()["id"])
    device_group_add_devices(
        principal=Principal.for_user(acme_world.olivia),
        group=group,
        devices=[Device.objects.get(pk=device_id)],
    )
    figures["joined group"] = applied_line("hall-a", "joining the group")

    edited = olivia.patch(f"{GROUPS}{group.pk}/", {"env": {"LINE": "hall-b"}}, format="json")
    assert edited.status_code == 200, edited.json()
    figures["group edit"] = applied_line("hall-b", "the group's edit")

    own = olivia.patch(
        f"/api/v1/teams/acme/devices/{device_id}/", {"env": {"LINE": "press-own"}}, format="json"
    )
    assert own.status_code == 200, own.json()
    figures["device override"] = applied_line("press-own", "the device's own value")

    targets = list(DeviceTarget.objects.filter(device_id=device_id).order_by("generation"))
    assert [target.snapshot_id for target in targets] == [v1.pk] * 4
    assert targets[0].pk == first.pk
    print("\nenv edit -> applied and written: " + ", ".join(
        f"{name} {seconds:.2f} s" for name, seconds in figures.items()
    ))  # fmt: skip
