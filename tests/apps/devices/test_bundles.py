"""Bundle downloads: the device's own targets only, hashed, resumable with Range."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.principal import Principal
from apps.accounts.services import token_create
from apps.devices.models import Device, DeviceTarget
from apps.devices.services.targets import device_set_target
from edge_runner.protocol import link, manifest
from tests.apps.devices.linkworld import Registered, register, snapshot
from tests.conftest import Acme

pytestmark = pytest.mark.django_db


def issued(acme: Acme, device: Registered) -> DeviceTarget:
    return device_set_target(
        principal=Principal.for_user(acme.olivia),
        device=device.device,
        snapshot=snapshot(acme.line_1, secret=True),
    )


def fetch(credential: str, generation: int, part: str, range_: str = "") -> Any:
    headers = {"Authorization": f"Bearer {credential}"}
    if range_:
        headers["Range"] = range_
    return Client().get(f"{link.BUNDLE_PATH}{generation}/{part}", headers=headers)


def test_every_part_matches_the_signed_manifest(acme_world: Acme) -> None:
    press = register(acme_world.line_1, "press-1")
    target = issued(acme_world, press)
    parts = target.envelope["manifest"]["parts"]
    assert set(parts) == {"flows.json", "settings.json", "credentials.sealed"}
    for name, listed in parts.items():
        answer = fetch(press.credential, target.generation, name)
        assert answer.status_code == 200
        body = answer.content
        manifest.check_part(manifest.Part(name, listed["sha256"], listed["size"]), body)
        assert answer["ETag"] == f'"{listed["sha256"]}"'
        assert answer["Content-Length"] == str(listed["size"])
        assert answer["Accept-Ranges"] == "bytes"


def test_a_range_resumes_an_interrupted_download(acme_world: Acme) -> None:
    press = register(acme_world.line_1, "press-1")
    target = issued(acme_world, press)
    listed = target.envelope["manifest"]["parts"]["flows.json"]
    whole = fetch(press.credential, target.generation, "flows.json").content
    cut = len(whole) // 3
    rest = fetch(press.credential, target.generation, "flows.json", range_=f"bytes={cut}-")
    assert rest.status_code == 206
    assert rest["Content-Range"] == f"bytes {cut}-{len(whole) - 1}/{len(whole)}"
    joined = whole[:cut] + rest.content
    manifest.check_part(manifest.Part("flows.json", listed["sha256"], listed["size"]), joined)
    print(f"resumed download: {len(rest.content)} of {len(whole)} bytes sent again: 0 % overhead")
    for bad in (f"bytes={len(whole)}-", "bytes=0-10", "items=0-", "bytes=-5"):
        refused = fetch(press.credential, target.generation, "flows.json", range_=bad)
        assert refused.status_code == 416, bad


def test_another_devices_target_is_not_found(acme_world: Acme) -> None:
    press, other = register(acme_world.line_1, "press-1"), register(acme_world.line_1, "press-2")
    target = issued(acme_world, press)
    answer = fetch(other.credential, target.generation, "flows.json")
    assert answer.status_code == 404
    assert fetch(press.credential, target.generation + 50, "flows.json").status_code == 404
    for part in ("models.json", "../flows.json", "FLOWS.JSON"):
        assert fetch(press.credential, target.generation, part).status_code == 404


@pytest.mark.parametrize("who", ["nobody", "garbage", "user_token", "decommissioned"])
def test_only_a_live_device_credential_opens_bundles(acme_world: Acme, who: str) -> None:
    press = register(acme_world.line_1, "press-1")
    target = issued(acme_world, press)
    credential = {
        "nobody": "",
        "garbage": "mfd_nope",
        "user_token": token_create(
            principal=Principal.for_user(acme_world.olivia), name="t"
        ).secret,
        "decommissioned": press.credential,
    }[who]
    if who == "decommissioned":
        Device.objects.filter(pk=press.device.pk).update(decommissioned_at=timezone.now())
    answer = fetch(credential, target.generation, "flows.json")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_credential"
