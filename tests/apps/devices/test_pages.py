"""The fleet pages: list, filters, bulk actions, adding a device, tokens, the device page."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.devices.auth import hash_secret
from apps.devices.models import (
    Device,
    DeviceHeartbeat,
    DeviceStateChange,
    DeviceStatus,
    DeviceTarget,
    ProvisioningToken,
    TargetOutcome,
)
from apps.devices.services import device_register, provisioning_token_create
from apps.snapshots.models import Snapshot
from apps.teams.models import Application, Team
from tests.conftest import Acme, Globex
from tests.routes import SEALING_KEY_B64

pytestmark = pytest.mark.django_db


def make_device(
    team: Team,
    owner: User,
    name: str,
    *,
    application: Application | None = None,
    status: str = DeviceStatus.ONLINE,
    tags: list[str] | None = None,
) -> Device:
    """A device registered the real way, then given the live state a link would report."""
    _, raw = provisioning_token_create(
        principal=Principal.for_user(owner),
        team=team,
        name=f"{name} token",
        application=application,
    )
    device, _ = device_register(token=raw, name=name, sealing_key_b64=SEALING_KEY_B64)
    Device.objects.filter(pk=device.pk).update(
        status=status,
        tags=tags or [],
        last_seen=timezone.now() - dt.timedelta(minutes=2),
        agent_version="0.3.1",
    )
    device.refresh_from_db()
    return device


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def fleet_url(team: str = "acme") -> str:
    return f"/teams/{team}/devices/"


def device_url(device: Device) -> str:
    return f"/teams/acme/devices/{device.pk}/"


def test_empty_fleet_explains_how_to_add_a_device(acme_world: Acme) -> None:
    page = client_for(acme_world.olivia).get(fleet_url()).content.decode()
    assert "No devices yet" in page
    assert "/teams/acme/devices/add/" in page
    viewer_page = client_for(acme_world.vera).get(fleet_url()).content.decode()
    assert "No devices yet" in viewer_page
    assert "/teams/acme/devices/add/" not in viewer_page
    assert "Ask a team owner or editor" in viewer_page


def test_fleet_lists_every_status_with_pill_tags_and_last_seen(acme_world: Acme) -> None:
    team, olivia = acme_world.team, acme_world.olivia
    for status in ("online", "offline", "updating", "error", "suspended", "pending"):
        make_device(
            team,
            olivia,
            f"Press {status}",
            application=acme_world.line_1,
            status=status,
            tags=["line-3"],
        )
    page = client_for(acme_world.vera).get(fleet_url()).content.decode()
    for status in ("online", "offline", "updating", "error", "suspended", "pending"):
        assert f"pill pill-{status}" in page
        assert f"Press {status}" in page
    assert '<span class="chip">line-3</span>' in page
    assert "2 min ago" in page
    assert "UTC" in page  # the exact time in the title


def test_filters_narrow_the_list(acme_world: Acme) -> None:
    team, olivia = acme_world.team, acme_world.olivia
    make_device(team, olivia, "Motor A", application=acme_world.line_1, tags=["PRD"])
    make_device(team, olivia, "Motor B", status=DeviceStatus.ERROR)
    client = client_for(acme_world.olivia)

    def names(query: dict[str, Any]) -> set[str]:
        page = client.get(fleet_url(), query).content.decode()
        return {name for name in ("Motor A", "Motor B") if name in page}

    assert names({}) == {"Motor A", "Motor B"}
    assert names({"status": "error"}) == {"Motor B"}
    assert names({"tag": "PRD"}) == {"Motor A"}
    assert names({"application": "line-1"}) == {"Motor A"}
    assert names({"q": "motor b"}) == {"Motor B"}
    page = client.get(fleet_url(), {"q": "nothing like it"}).content.decode()
    assert "No devices match these filters" in page


def test_live_refresh_returns_only_the_table(acme_world: Acme) -> None:
    make_device(acme_world.team, acme_world.olivia, "Motor A")
    response = client_for(acme_world.olivia).get(
        fleet_url(), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="fleet-table"
    )
    page = response.content.decode()
    assert "Motor A" in page
    assert "<html" not in page


def test_bulk_add_tag_is_audited_per_device(acme_world: Acme) -> None:
    team, olivia = acme_world.team, acme_world.olivia
    first = make_device(team, olivia, "Motor A")
    second = make_device(team, olivia, "Motor B")
    response = client_for(acme_world.eddie).post(
        fleet_url(), {"action": "add_tag", "tag": "line-9", "devices": [first.pk, second.pk]}
    )
    assert response.status_code == 302
    for device in (first, second):
        device.refresh_from_db()
        assert device.tags == ["line-9"]
    assert AuditEvent.objects.filter(event="device.device.updated").count() == 2


def test_bulk_bad_tag_is_an_inline_error_and_changes_nothing(acme_world: Acme) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Motor A")
    response = client_for(acme_world.olivia).post(
        fleet_url(), {"action": "add_tag", "tag": "no spaces allowed", "devices": [device.pk]}
    )
    assert response.status_code == 400
    assert 'class="form-errors"' in response.content.decode()
    device.refresh_from_db()
    assert device.tags == []


def test_bulk_delete_asks_for_confirmation_first(acme_world: Acme) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Motor A")
    client = client_for(acme_world.olivia)
    body = {"action": "delete", "devices": [device.pk]}
    page = client.post(fleet_url(), body).content.decode()
    assert "Delete 1 device?" in page
    assert Device.objects.filter(pk=device.pk).exists()
    response = client.post(fleet_url(), {**body, "confirmed": "on"})
    assert response.status_code == 302
    assert not Device.objects.filter(pk=device.pk).exists()
    assert AuditEvent.objects.filter(event="device.device.deleted").count() == 1


def test_viewer_cannot_bulk_act_and_nothing_changes(acme_world: Acme) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Motor A")
    response = client_for(acme_world.vera).post(
        fleet_url(), {"action": "suspend", "devices": [device.pk]}
    )
    assert response.status_code == 403
    device.refresh_from_db()
    assert device.suspended is False


def test_bulk_move_to_application(acme_world: Acme) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Motor A")
    client_for(acme_world.olivia).post(
        fleet_url(), {"action": "move", "application": "line-1", "devices": [device.pk]}
    )
    device.refresh_from_db()
    assert device.application == acme_world.line_1


def test_add_device_shows_the_token_once_with_both_commands(acme_world: Acme) -> None:
    client = client_for(acme_world.eddie)
    response = client.post(
        "/teams/acme/devices/add/",
        {
            "name": "Line 1 gateways",
            "application": "line-1",
            "max_uses": "5",
            "expires_in_days": "7",
        },
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    token = ProvisioningToken.objects.get(name="Line 1 gateways")
    assert token.application == acme_world.line_1
    assert token.max_uses == 5
    start = page.index('data-testid="register-command">') + len('data-testid="register-command">')
    command = page[start : page.index("</code>", start)]
    parts = command.split()
    assert parts[:2] == ["edge-runner", "register"]
    raw = parts[parts.index("--token") + 1]
    assert hash_secret(raw) == token.token_hash
    assert parts[parts.index("--url") + 1].startswith("http")
    assert "edge-runner run --data-dir /var/lib/manifold-edge" in page
    again = client.get("/teams/acme/devices/tokens/").content.decode()
    assert token.prefix in again
    assert raw not in again


def test_add_device_bad_input_is_inline(acme_world: Acme) -> None:
    response = client_for(acme_world.olivia).post(
        "/teams/acme/devices/add/", {"name": "", "max_uses": "0"}
    )
    assert response.status_code == 400
    assert ProvisioningToken.objects.count() == 0
    assert "field-error" in response.content.decode()


def test_revoke_token(acme_world: Acme) -> None:
    token, _ = provisioning_token_create(
        principal=Principal.for_user(acme_world.olivia), team=acme_world.team, name="Old"
    )
    response = client_for(acme_world.vera).post(f"/teams/acme/devices/tokens/{token.pk}/revoke/")
    assert response.status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None
    client_for(acme_world.olivia).post(f"/teams/acme/devices/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_device_page_shows_resources_history_and_what_ran_when(acme_world: Acme) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Motor A", tags=["PRD"])
    now = timezone.now()
    for minute in range(5):
        DeviceHeartbeat.objects.create(
            device=device,
            at=now - dt.timedelta(minutes=5 - minute),
            cpu_percent=10.0 * minute,
            memory_bytes=100_000_000 + minute,
            disk_free_bytes=5_000_000_000,
            uptime_seconds=3600.0 * minute,
        )
    Device.objects.filter(pk=device.pk).update(
        resources={"cpu_percent": 40.0, "memory_bytes": 104_857_600, "uptime_seconds": 7200},
        last_errors=[{"node": "modbus-1", "message": "Connection refused"}],
    )
    DeviceStateChange.objects.create(
        device=device, at=now - dt.timedelta(hours=2), status="online", reason="registered"
    )
    DeviceStateChange.objects.create(
        device=device, at=now - dt.timedelta(hours=1), status="error", reason="engine crashed"
    )
    client = client_for(acme_world.vera)
    page = client.get(device_url(device)).content.decode()
    assert "<polyline" in page
    assert "100.0 MB" in page
    assert "2 h 0 min" in page
    assert "Connection refused" in page
    assert "engine crashed" in page
    assert "Settings" not in page  # a viewer gets no forms
    when = (now - dt.timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M")
    answer = client.get(device_url(device), {"when": when}).content.decode()
    section = answer[answer.index('data-testid="state-answer"') :]
    assert "pill-online" in section[:800]
    early = (now - dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M")
    assert "no recorded state" in client.get(device_url(device), {"when": early}).content.decode()


def test_settings_errors_are_inline_and_change_nothing(acme_world: Acme) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Motor A")
    client = client_for(acme_world.eddie)
    url = device_url(device) + "settings/"
    response = client.post(url, {"name": "Motor A", "tags": "", "env": "GOOD=1\nnot a line"})
    assert response.status_code == 400
    assert "Line 2: write NAME=value" in response.content.decode()
    response = client.post(url, {"name": "Motor A", "tags": "bad tag!", "env": ""})
    assert response.status_code == 400
    device.refresh_from_db()
    assert device.tags == []
    assert device.env == {}
    response = client.post(url, {"name": "Motor Z", "tags": "a, b", "env": "PLC_HOST=10.0.0.5"})
    assert response.status_code == 302
    device.refresh_from_db()
    assert (device.name, device.tags, device.env) == (
        "Motor Z",
        ["a", "b"],
        {"PLC_HOST": "10.0.0.5"},
    )


def test_decommission_needs_the_typed_name(acme_world: Acme) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Motor A")
    client = client_for(acme_world.olivia)
    url = device_url(device) + "decommission/"
    response = client.post(url, {"confirm": "Motor B"})
    assert response.status_code == 400
    assert "not the device" in response.content.decode()
    device.refresh_from_db()
    assert device.decommissioned_at is None
    assert client.post(url, {"confirm": "Motor A"}).status_code == 302
    device.refresh_from_db()
    assert device.status == DeviceStatus.DECOMMISSIONED


def test_suspend_and_resume_from_the_device_page(acme_world: Acme) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Motor A")
    client = client_for(acme_world.eddie)
    client.post(device_url(device) + "suspend/")
    device.refresh_from_db()
    assert device.suspended
    assert device.status == DeviceStatus.SUSPENDED
    client.post(device_url(device) + "resume/")
    device.refresh_from_db()
    assert not device.suspended


def test_outsider_gets_404_for_acme_device(acme_world: Acme, globex_world: Globex) -> None:
    device = make_device(acme_world.team, acme_world.olivia, "Motor A")
    client = client_for(globex_world.oscar)
    assert client.get(device_url(device)).status_code == 404
    assert client.get(f"/teams/globex/devices/{device.pk}/").status_code == 404


def test_application_tab_lists_only_its_devices(acme_world: Acme) -> None:
    make_device(acme_world.team, acme_world.olivia, "Motor A", application=acme_world.line_1)
    make_device(acme_world.team, acme_world.olivia, "Loose one")
    client = client_for(acme_world.vera)
    page = client.get("/teams/acme/applications/line-1/devices/").content.decode()
    assert "Motor A" in page
    assert "Loose one" not in page
    overview = client.get("/teams/acme/applications/line-1/").content.decode()
    assert "/teams/acme/applications/line-1/devices/" in overview


def test_side_nav_shows_devices_only_with_device_read(acme_world: Acme) -> None:
    assert (
        "/teams/acme/devices/" in client_for(acme_world.vera).get("/teams/acme/").content.decode()
    )
    dashboard_page = client_for(acme_world.dana).get("/teams/acme/").content.decode()
    assert ">Devices<" not in dashboard_page
    assert client_for(acme_world.dana).get(fleet_url()).status_code == 403


def test_target_differing_from_active_shows_arrow_and_failure_reason(acme_world: Acme) -> None:
    team = acme_world.team
    device = make_device(team, acme_world.olivia, "Motor A", application=acme_world.line_1)
    good = Snapshot.objects.create(
        team=team, application=acme_world.line_1, name="v1 stable", flows=[], digest="a" * 64
    )
    bad = Snapshot.objects.create(
        team=team, application=acme_world.line_1, name="v2 broken", flows=[], digest="b" * 64
    )

    def target(snapshot: Snapshot, generation: int, outcome: str, reason: str = "") -> Any:
        return DeviceTarget.objects.create(
            team=team,
            device=device,
            snapshot=snapshot,
            generation=generation,
            envelope={},
            digest=snapshot.digest,
            outcome=outcome,
            reason=reason,
        )

    active = target(good, 1, TargetOutcome.APPLIED)
    failed = target(bad, 2, TargetOutcome.ROLLED_BACK, "health check failed: node x in error")
    Device.objects.filter(pk=device.pk).update(active_target=active, target=failed)
    page = client_for(acme_world.vera).get(fleet_url()).content.decode()
    assert "v1 stable" in page
    assert 'class="snapshot-target failed"' in page
    assert "→ v2 broken" in page
    assert "health check failed: node x in error" in page
    Device.objects.filter(pk=device.pk).update(target=active)
    page = client_for(acme_world.vera).get(fleet_url()).content.decode()
    assert "→" not in page
