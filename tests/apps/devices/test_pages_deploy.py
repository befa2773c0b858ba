"""Deploying a snapshot from the device page (through ``device_set_target``)."""

from __future__ import annotations

import pytest

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.devices.models import DeviceTarget
from apps.snapshots.models import Snapshot
from apps.snapshots.services import snapshot_create
from tests.apps.devices.test_pages import client_for, device_url, make_device
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db


def make_snapshot(acme: Acme, name: str) -> Snapshot:
    return snapshot_create(
        principal=Principal.for_user(acme.olivia),
        application=acme.line_1,
        name=name,
        flows=[{"id": "t1", "type": "tab", "label": "Flow 1"}],
    )


def test_deploy_a_snapshot_makes_it_the_target(acme_world: Acme) -> None:
    device = make_device(
        acme_world.team, acme_world.olivia, "Motor A", application=acme_world.line_1
    )
    snapshot = make_snapshot(acme_world, "v7 night shift")
    client = client_for(acme_world.olivia)
    page = client.get(device_url(device)).content.decode()
    assert "Deploy snapshot…" in page
    assert "v7 night shift" in page
    response = client.post(device_url(device) + "deploy/", {"snapshot": snapshot.pk})
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.target is not None
    assert device.target.snapshot == snapshot
    assert AuditEvent.objects.filter(event="device.target.set").count() == 1
    fleet = client.get("/teams/acme/devices/").content.decode()
    assert "→ v7 night shift" in fleet


def test_deploy_refuses_foreign_or_missing_snapshots_inline(
    acme_world: Acme, globex_world: Globex
) -> None:
    device = make_device(
        acme_world.team, acme_world.olivia, "Motor A", application=acme_world.line_1
    )
    foreign = snapshot_create(
        principal=Principal.for_user(globex_world.oscar),
        application=globex_world.hq,
        name="Globex v1",
        flows=[{"id": "g1", "type": "tab", "label": "Globex flow"}],
    )
    make_snapshot(acme_world, "v1")
    client = client_for(acme_world.olivia)
    for value in (foreign.pk, 987654, "nope"):
        response = client.post(device_url(device) + "deploy/", {"snapshot": value})
        assert response.status_code == 400
        assert "Choose a snapshot of this device" in response.content.decode()
    assert DeviceTarget.objects.count() == 0


def test_viewer_cannot_deploy(acme_world: Acme) -> None:
    device = make_device(
        acme_world.team, acme_world.olivia, "Motor A", application=acme_world.line_1
    )
    snapshot = make_snapshot(acme_world, "v1")
    client = client_for(acme_world.vera)
    assert "Deploy snapshot…" not in client.get(device_url(device)).content.decode()
    response = client.post(device_url(device) + "deploy/", {"snapshot": snapshot.pk})
    assert response.status_code == 403
    assert DeviceTarget.objects.count() == 0


def test_device_without_application_explains_why_it_cannot_be_deployed(acme_world: Acme) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Loose")
    response = client_for(acme_world.olivia).post(device_url(device) + "deploy/", {"snapshot": 1})
    assert response.status_code == 400
    assert "Move the device into an application" in response.content.decode()
