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


def test_a_model_part_streams_from_the_store_and_resumes(acme_world: Acme, tmp_path: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import override_settings
    from rest_framework.test import APIClient

    from apps.snapshots.artifacts import artifact_path
    from apps.snapshots.services import snapshot_create
    from tests.apps.snapshots.conftest import tiny_model

    with override_settings(ARTIFACT_DIR=tmp_path / "artifacts"):
        client = APIClient()
        client.force_login(acme_world.olivia)
        data = tiny_model()
        sha = client.post(
            "/api/v1/teams/acme/models/",
            {"name": "m", "file": SimpleUploadedFile("m.onnx", data)},
            format="multipart",
        ).json()["sha256"]
        flows = [
            {"id": "t", "type": "tab"},
            {"id": "m", "type": "onnx-infer", "z": "t", "model": sha, "wires": [[]]},
        ]
        press = register(acme_world.line_1, "press-1")
        target = device_set_target(
            principal=Principal.for_user(acme_world.olivia),
            device=press.device,
            snapshot=snapshot_create(
                principal=Principal.for_user(acme_world.olivia),
                application=acme_world.line_1,
                name="scoring",
                flows=flows,
            ),
        )
        name = f"models/{sha}.onnx"
        assert target.envelope["manifest"]["parts"][name] == {"sha256": sha, "size": len(data)}
        whole = fetch(press.credential, target.generation, name)
        assert whole.status_code == 200
        assert whole.streaming
        assert b"".join(whole.streaming_content) == data
        assert whole["ETag"] == f'"{sha}"'
        assert whole["Content-Length"] == str(len(data))
        rest = fetch(press.credential, target.generation, name, range_="bytes=10-")
        assert rest.status_code == 206
        assert rest["Content-Range"] == f"bytes 10-{len(data) - 1}/{len(data)}"
        assert b"".join(rest.streaming_content) == data[10:]
        beyond = fetch(press.credential, target.generation, name, range_=f"bytes={len(data)}-")
        assert beyond.status_code == 416
        other = register(acme_world.line_1, "press-2")
        assert fetch(other.credential, target.generation, name).status_code == 404
        # a stored file that lost bytes is not served at all
        artifact_path(sha).write_bytes(data[:-1])
        assert fetch(press.credential, target.generation, name).status_code == 404
