"""Queries compiled once (apps/core/prepared.py) answer what the ORM answers."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.accounts.principal import Principal
from apps.core.prepared import PreparedQuery, insert_row, save_fields
from apps.devices.models import Device, DeviceAlert, DeviceHeartbeat, DeviceStateChange
from apps.devices.services.targets import device_set_target
from tests.apps.devices.linkworld import register, snapshot
from tests.conftest import Acme

pytestmark = pytest.mark.django_db

_DEVICE = PreparedQuery(
    lambda pk: (
        Device.objects.select_related("team", "application", "target__snapshot")
        .defer("target__snapshot__flows", "resources")
        .filter(pk=pk)
    ),
    sentinel=-1,
)
_ALERTS = PreparedQuery(
    lambda pk: DeviceAlert.objects.filter(device_id=pk, cleared_at__isnull=True), sentinel=-1
)


def _fields(obj: object) -> dict[str, object]:
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def test_first_builds_the_same_objects_as_the_orm(acme_world: Acme) -> None:
    device = register(acme_world.line_1, "press-1").device
    device.tags, device.env = ["line-3", "PRD"], {"A": "1"}
    device.save()
    device_set_target(
        principal=Principal.for_user(acme_world.olivia),
        device=device,
        snapshot=snapshot(acme_world.line_1),
    )
    expected = (
        Device.objects.select_related("team", "application", "target__snapshot")
        .defer("target__snapshot__flows", "resources")
        .get(pk=device.pk)
    )
    found = _DEVICE.first(device.pk)
    assert found is not None
    assert _fields(found) == _fields(expected)  # JSON and datetime columns converted alike
    assert found.get_deferred_fields() == {"resources"}
    assert _fields(found.team) == _fields(expected.team)
    assert found.target is not None
    assert expected.target is not None
    assert found.target.envelope == expected.target.envelope
    assert found.target.snapshot.name == expected.target.snapshot.name
    assert found.target.snapshot.get_deferred_fields() == {"flows"}
    assert found.target.snapshot.flows == expected.target.snapshot.flows  # loaded on access
    assert _DEVICE.first(device.pk + 1000) is None


def test_all_lists_every_row(acme_world: Acme) -> None:
    device = register(acme_world.line_1, "press-1").device
    now = timezone.now()
    for minutes, kind in ((1, "offline"), (2, "error")):
        DeviceAlert.objects.create(
            device=device, kind=kind, raised_at=now - dt.timedelta(minutes=minutes)
        )
    DeviceAlert.objects.create(device=device, kind="offline", raised_at=now, cleared_at=now)
    assert sorted(a.pk for a in _ALERTS.all(device.pk)) == sorted(
        DeviceAlert.objects.filter(device=device, cleared_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    assert len(_ALERTS.all(device.pk)) == 2


def test_a_sentinel_that_is_not_the_one_parameter_is_refused() -> None:
    both = PreparedQuery(lambda v: Device.objects.filter(name=v, hostname=v), sentinel="x")
    with pytest.raises(ValueError, match="exactly once"):
        both.first("y")


def test_save_fields_writes_the_fields_and_the_auto_now_time(acme_world: Acme) -> None:
    device = register(acme_world.line_1, "press-1").device
    before = Device.objects.get(pk=device.pk).updated_at
    device.status, device.resources, device.name = "online", {"cpu_percent": 2.5}, "renamed"
    save_fields(device, ["status", "resources", "updated_at"])
    stored = Device.objects.get(pk=device.pk)
    assert (stored.status, stored.resources, stored.name) == (
        "online",
        {"cpu_percent": 2.5},
        "press-1",
    )
    assert stored.updated_at > before
    assert stored.updated_at == device.updated_at


def test_insert_row_stores_what_create_stores(acme_world: Acme) -> None:
    device = register(acme_world.line_1, "press-1").device
    at = timezone.now()
    fields = {"device": device, "at": at, "status": "online", "reason": "link connected"}
    insert_row(DeviceStateChange(**fields))
    DeviceStateChange.objects.create(**fields)
    rows = list(
        DeviceStateChange.objects.filter(device=device)
        .order_by("id")
        .values("device_id", "at", "status", "active_target_id", "snapshot_id", "reason")
    )
    assert len(rows) == 2
    assert rows[0] == rows[1]
    assert rows[0]["at"] == at
    # defaults of fields left out apply (nulls here), and a second insert adds a row
    insert_row(DeviceHeartbeat(device=device, at=at, cpu_percent=2.5))
    insert_row(DeviceHeartbeat(device=device, at=at))
    beats = list(
        DeviceHeartbeat.objects.filter(device=device).values("cpu_percent", "memory_bytes")
    )
    assert sorted(beats, key=lambda b: b["cpu_percent"] or 0) == [
        {"cpu_percent": None, "memory_bytes": None},
        {"cpu_percent": 2.5, "memory_bytes": None},
    ]
