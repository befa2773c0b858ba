"""Device and group env reach the device: the signed settings part carries the snapshot's env
overlaid with the groups' and the device's own (the device wins), and an edit that changes a
device's env re-issues its target."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.devices.models import Device, DeviceGroup, DeviceTarget, TargetOutcome
from apps.devices.services import (
    device_group_add_devices,
    device_group_create,
    device_group_delete,
    device_group_remove_devices,
    device_group_update,
    device_update,
)
from apps.devices.services.devmode import device_developer_mode_leave
from apps.devices.services.targets import device_set_target, target_env
from apps.snapshots.services import snapshot_create, team_signing_keys
from edge_runner.protocol import link, manifest
from tests.apps.devices.linkworld import FLOWS, Registered, register
from tests.apps.devices.test_pages import client_for, device_url
from tests.conftest import Acme

pytestmark = pytest.mark.django_db


def olivia(acme: Acme) -> Principal:
    return Principal.for_user(acme.olivia)


def deployed(acme: Acme, device: Registered, env: dict[str, Any] | None = None) -> DeviceTarget:
    """``device`` given a target of a snapshot whose own env is ``env``."""
    snapshot = snapshot_create(
        principal=olivia(acme),
        application=acme.line_1,
        name="v1",
        flows=FLOWS,
        env=env if env is not None else {"LINE": "snapshot", "BROKER": "mqtt://plant"},
    )
    return device_set_target(principal=olivia(acme), device=device.device, snapshot=snapshot)


def signed_settings(target: DeviceTarget, device: Device) -> dict[str, Any]:
    """The settings part as the device gets it, checked against the envelope it verifies."""
    verified = manifest.verify(
        target.envelope,
        trusted_keys=team_signing_keys(device.team),
        team=str(device.team_id),
        device=str(device.pk),
    )
    body = bytes(target.settings_part)
    listed = verified.part(manifest.SETTINGS_PART)
    assert listed is not None
    manifest.check_part(listed, body)
    settings: dict[str, Any] = json.loads(body)
    return settings


def current(device: Registered) -> DeviceTarget:
    target = Device.objects.select_related("target").get(pk=device.device.pk).target
    assert target is not None
    return target


def line_group(acme: Acme, name: str = "hall-a", **env: str) -> DeviceGroup:
    return device_group_create(principal=olivia(acme), team=acme.team, name=name, env=env)


def test_the_signed_settings_part_carries_snapshot_then_group_then_device_env(
    acme_world: Acme,
) -> None:
    press = register(acme_world.line_1, "press-1")
    hall = line_group(acme_world, "hall-a", LINE="group-a", SHIFT="night", ZONE="a")
    zone = line_group(acme_world, "hall-b", ZONE="b")
    press.device.groups.set([hall, zone])
    press.device.env = {"LINE": "device", "OWN": "1"}
    press.device.save()
    target = deployed(acme_world, press)
    env = signed_settings(target, press.device)["env"]
    assert env == {
        "BROKER": "mqtt://plant",  # the snapshot's, no one overrides it
        "LINE": "device",  # device > group > snapshot
        "SHIFT": "night",
        "ZONE": "b",  # groups by name: the later one wins
        "OWN": "1",
    }
    assert target_env(target) == env


def test_editing_group_env_reissues_with_a_higher_generation(
    acme_world: Acme, audit_log: Callable[[Any], list[str]]
) -> None:
    press = register(acme_world.line_1, "press-1")
    idle = register(acme_world.line_1, "press-2")  # in the group but never deployed
    hall = line_group(acme_world, LINE="group-a")
    device_group_add_devices(principal=olivia(acme_world), group=hall, devices=[press.device])
    first = deployed(acme_world, press)
    device_group_add_devices(principal=olivia(acme_world), group=hall, devices=[idle.device])
    device_group_update(principal=olivia(acme_world), group=hall, env={"LINE": "group-b"})
    second = current(press)
    assert second.generation > first.generation
    assert second.snapshot_id == first.snapshot_id
    assert signed_settings(second, press.device)["env"]["LINE"] == "group-b"
    assert DeviceTarget.objects.get(pk=first.pk).outcome == TargetOutcome.SUPERSEDED
    assert not DeviceTarget.objects.filter(device=idle.device).exists()
    event = AuditEvent.objects.filter(event="device.target.set").order_by("-id").first()
    assert event is not None
    assert event.actor_label == acme_world.olivia.email
    assert audit_log(acme_world.team)[-2:] == ["device.group.updated", "device.target.set"]


def test_an_edit_that_leaves_the_effective_env_alone_issues_nothing(acme_world: Acme) -> None:
    press = register(acme_world.line_1, "press-1")
    hall = line_group(acme_world, LINE="group-a")
    device_update(
        principal=olivia(acme_world), device=press.device, groups=[hall], env={"LINE": "mine"}
    )
    first = deployed(acme_world, press)
    # The device's own LINE hides the group's; a new description or the same env change nothing.
    device_group_update(principal=olivia(acme_world), group=hall, env={"LINE": "group-b"})
    device_group_update(principal=olivia(acme_world), group=hall, description="Hall A")
    device_update(principal=olivia(acme_world), device=press.device, tags=["x"])
    device_update(principal=olivia(acme_world), device=press.device, env={"LINE": "mine"})
    assert current(press).pk == first.pk
    assert DeviceTarget.objects.count() == 1


def test_device_env_membership_and_group_deletion_each_reissue(acme_world: Acme) -> None:
    press = register(acme_world.line_1, "press-1")
    hall = line_group(acme_world, LINE="group-a")
    generations = [deployed(acme_world, press).generation]

    def step(expected_line: str | None) -> None:
        target = current(press)
        assert target.generation > generations[-1]
        generations.append(target.generation)
        assert signed_settings(target, press.device)["env"].get("LINE") == expected_line

    device_group_add_devices(principal=olivia(acme_world), group=hall, devices=[press.device])
    step("group-a")
    device_update(principal=olivia(acme_world), device=press.device, env={"LINE": "own"})
    step("own")
    device_update(principal=olivia(acme_world), device=press.device, env={})
    step("group-a")
    device_group_remove_devices(principal=olivia(acme_world), group=hall, devices=[press.device])
    step("snapshot")
    device_group_add_devices(principal=olivia(acme_world), group=hall, devices=[press.device])
    step("group-a")
    device_group_delete(principal=olivia(acme_world), group=hall)
    step("snapshot")


def developing(acme: Acme) -> tuple[Registered, DeviceGroup, DeviceTarget]:
    """A device of group ``hall-a`` (LINE=group-a) with a target, then in developer mode."""
    press = register(acme.line_1, "press-1")
    hall = line_group(acme, LINE="group-a")
    device_group_add_devices(principal=olivia(acme), group=hall, devices=[press.device])
    first = deployed(acme, press)
    Device.objects.filter(pk=press.device.pk).update(developer_mode=True)
    return press, hall, first


def test_a_device_in_developer_mode_is_skipped_until_it_leaves(acme_world: Acme) -> None:
    press, hall, first = developing(acme_world)
    device_group_update(principal=olivia(acme_world), group=hall, env={"LINE": "group-b"})
    device_update(principal=olivia(acme_world), device=press.device, tags=["dev"])
    assert current(press).pk == first.pk
    assert target_env(first)["LINE"] == "group-a"
    left = device_developer_mode_leave(
        principal=olivia(acme_world), device=press.device, keep=False
    )
    assert left.target is not None
    assert left.target.generation > first.generation
    assert signed_settings(left.target, press.device)["env"]["LINE"] == "group-b"


def test_decommissioned_and_unregistered_devices_are_left_alone(acme_world: Acme) -> None:
    gone = register(acme_world.line_1, "gone")
    hall = line_group(acme_world, LINE="group-a")
    device_group_add_devices(principal=olivia(acme_world), group=hall, devices=[gone.device])
    first = deployed(acme_world, gone)
    Device.objects.filter(pk=gone.device.pk).update(decommissioned_at=first.created_at)
    device_group_update(principal=olivia(acme_world), group=hall, env={"LINE": "group-b"})
    assert DeviceTarget.objects.filter(device=gone.device).count() == 1


def test_the_bundle_serves_the_signed_bytes_after_a_later_edit(acme_world: Acme) -> None:
    press = register(acme_world.line_1, "press-1")
    first = deployed(acme_world, press)
    device_update(principal=olivia(acme_world), device=press.device, env={"LINE": "later"})
    assert current(press).generation > first.generation
    answer = Client().get(
        f"{link.BUNDLE_PATH}{first.generation}/{manifest.SETTINGS_PART}",
        headers={"Authorization": f"Bearer {press.credential}"},
    )
    assert answer.status_code == 200
    listed = first.envelope["manifest"]["parts"][manifest.SETTINGS_PART]
    assert manifest.sha256_hex(answer.content) == listed["sha256"]
    assert json.loads(answer.content)["env"]["LINE"] == "snapshot"


def test_a_target_issued_before_the_settings_were_stored_serves_the_snapshots(
    acme_world: Acme,
) -> None:
    press = register(acme_world.line_1, "press-1")
    target = deployed(acme_world, press)
    DeviceTarget.objects.filter(pk=target.pk).update(settings_part=b"")
    answer = Client().get(
        f"{link.BUNDLE_PATH}{target.generation}/{manifest.SETTINGS_PART}",
        headers={"Authorization": f"Bearer {press.credential}"},
    )
    assert answer.status_code == 200
    assert json.loads(answer.content)["env"] == {"LINE": "snapshot", "BROKER": "mqtt://plant"}


def env_card(page: str) -> dict[str, str]:
    """The device page's env card as NAME: value (html-unescaped by hand for these values)."""
    card = page[page.index('data-testid="effective-env"') :]
    card = card[: card.index("</section>")]
    return dict(
        re.findall(r'data-env-name="(\w+)".*?class="env-value"><code>(.*?)</code>', card, re.DOTALL)
    )


def test_the_env_card_shows_what_the_target_carries(acme_world: Acme) -> None:
    press = register(acme_world.line_1, "press-1")
    hall = line_group(acme_world, LINE="group-a", SHIFT="night")
    device_update(
        principal=olivia(acme_world), device=press.device, groups=[hall], env={"OWN": "1"}
    )
    target = deployed(acme_world, press)
    page = client_for(acme_world.vera).get(device_url(press.device)).content.decode()
    assert env_card(page) == target_env(target)
    assert ">snapshot<" in page  # BROKER comes from the snapshot
    assert "env-not-shipped" not in page


def test_a_developer_mode_device_is_told_its_env_waits(acme_world: Acme) -> None:
    press, hall, first = developing(acme_world)
    owner = client_for(acme_world.olivia)

    saved = owner.post(
        device_url(press.device) + "settings/",
        {"name": "press-1", "tags": "", "env": "LINE=own"},
        follow=True,
    ).content.decode()
    assert "“press-1” is in developer mode: the new env applies when it leaves" in saved
    assert 'data-testid="env-not-shipped"' in saved
    assert env_card(saved)["LINE"] == "own"
    assert target_env(current(press))["LINE"] == "group-a"

    edited = owner.post(
        f"/teams/acme/devices/groups/{hall.pk}/edit/",
        {"name": hall.name, "description": "", "env_name": ["LINE"], "env_value": ["b"]},
        follow=True,
    ).content.decode()
    assert "in developer mode: the new env applies" in edited
    assert current(press).pk == first.pk
