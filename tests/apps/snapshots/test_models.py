"""Model artifacts: upload (streamed, checked as ONNX, bounded, de-duplicated), list, read and
delete per team; snapshots name only the team's models and list them as signed parts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.core.errors import ValidationError
from apps.snapshots.artifacts import artifact_path
from apps.snapshots.models import ModelArtifact, Snapshot
from apps.snapshots.services import snapshot_create, snapshot_delete, snapshot_parts
from tests.apps.snapshots.conftest import tiny_model, valid_flows
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db
MODELS = "/api/v1/teams/{team}/models/"


@pytest.fixture(autouse=True)
def artifact_dir(tmp_path: Path) -> Iterator[Path]:
    with override_settings(ARTIFACT_DIR=tmp_path / "artifacts"):
        yield tmp_path / "artifacts"


def upload(client: APIClient, team: str, data: bytes, name: str = "motor") -> Any:
    body = {"name": name, "file": SimpleUploadedFile("m.onnx", data)}
    return client.post(MODELS.format(team=team), body, format="multipart")


def infer_flow(sha256: str) -> list[dict[str, Any]]:
    return [
        {"id": "t1", "type": "tab", "label": "Line"},
        {"id": "m1", "type": "onnx-infer", "z": "t1", "model": sha256, "wires": [[]]},
    ]


def test_upload_stores_the_bytes_once_by_hash_and_audits(
    olivia_api: APIClient, acme: Any, artifact_dir: Path, audit_log: Any
) -> None:
    data = tiny_model()
    sha = hashlib.sha256(data).hexdigest()
    answer = upload(olivia_api, "acme", data)
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["sha256"] == sha
    assert body["size"] == len(data)
    assert body["name"] == "motor"
    assert artifact_path(sha).read_bytes() == data
    assert artifact_path(sha).is_relative_to(artifact_dir)
    again = upload(olivia_api, "acme", data, name="renamed")
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert ModelArtifact.objects.filter(team=acme).count() == 1
    assert audit_log(acme).count("team.model.uploaded") == 1
    assert not list((artifact_dir / ".incoming").iterdir())


def test_list_and_detail_show_the_team_models_only(
    olivia_owner: Any,
    olivia_api: APIClient,
    vera_api: APIClient,
    oscar_api: APIClient,
    globex_world: Globex,
) -> None:
    created = upload(olivia_api, "acme", tiny_model()).json()
    listing = vera_api.get(MODELS.format(team="acme"))
    assert listing.status_code == 200
    (row,) = listing.json()["results"]
    assert row["id"] == created["id"]
    assert row["snapshot_count"] == 0
    assert row["created_by"] == olivia_owner.email
    detail = f"{MODELS.format(team='acme')}{created['id']}/"
    assert vera_api.get(detail).json()["sha256"] == created["sha256"]
    # another team: 404 for the id, its own list is empty, even after uploading the same bytes
    assert oscar_api.get(detail).status_code == 404
    assert oscar_api.get(f"{MODELS.format(team='globex')}{created['id']}/").status_code == 404
    theirs = upload(oscar_api, "globex", tiny_model())
    assert theirs.status_code == 201
    assert theirs.json()["id"] != created["id"]
    assert oscar_api.delete(f"{MODELS.format(team='globex')}{created['id']}/").status_code == 404
    assert ModelArtifact.objects.filter(pk=created["id"]).exists()


def test_a_viewer_cannot_upload_or_delete(
    vera_api: APIClient, olivia_api: APIClient, acme: Any
) -> None:
    refused = upload(vera_api, "acme", tiny_model())
    assert refused.status_code == 403
    assert not ModelArtifact.objects.exists()
    created = upload(olivia_api, "acme", tiny_model()).json()
    assert vera_api.delete(f"{MODELS.format(team='acme')}{created['id']}/").status_code == 403
    assert ModelArtifact.objects.filter(pk=created["id"]).exists()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"this is not a protobuf at all, just some text", "not_onnx"),
        (tiny_model()[:-7], "not_onnx"),
        (b"\x08\x08", "not_onnx"),  # ir_version alone: no graph
    ],
)
def test_a_file_that_is_not_onnx_is_refused_with_400(
    olivia_api: APIClient, data: bytes, code: str, artifact_dir: Path
) -> None:
    answer = upload(olivia_api, "acme", data)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == code
    assert "file" in error["fields"]
    assert not ModelArtifact.objects.exists()
    assert not [p for p in artifact_dir.rglob("*") if p.is_file()]


def test_a_model_above_the_limit_is_refused(olivia_api: APIClient, artifact_dir: Path) -> None:
    data = tiny_model()
    with override_settings(MAX_MODEL_BYTES=len(data) - 1):
        answer = upload(olivia_api, "acme", data)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "too_large"
    assert not ModelArtifact.objects.exists()
    assert not [p for p in artifact_dir.rglob("*") if p.is_file()]


def test_a_body_above_the_model_limit_is_413_before_reading(olivia_api: APIClient) -> None:
    with override_settings(MAX_MODEL_BYTES=1000):
        answer = upload(olivia_api, "acme", b"\x08" * 200_000)
    assert answer.status_code == 413
    assert not ModelArtifact.objects.exists()


def test_a_snapshot_ships_the_models_its_onnx_nodes_name(
    acme_world: Acme, django_capture_on_commit_callbacks: Any
) -> None:
    olivia = Principal.for_user(acme_world.olivia)
    client = APIClient()
    client.force_login(acme_world.olivia)
    data = tiny_model()
    created = upload(client, "acme", data).json()
    snapshot = snapshot_create(
        principal=olivia,
        application=acme_world.line_1,
        name="with model",
        flows=infer_flow("SHA256:" + created["sha256"].upper()),
    )
    assert snapshot.model_refs == [
        {"name": "motor", "sha256": created["sha256"], "size": len(data)}
    ]
    assert client.get(f"{MODELS.format(team='acme')}{created['id']}/").json()["snapshot_count"] == 1
    assert set(snapshot_parts(snapshot)) == {"flows.json", "settings.json"}
    # delete: refused while the snapshot ships it, then allowed; the bytes go with the last row
    detail = f"{MODELS.format(team='acme')}{created['id']}/"
    refused = client.delete(detail)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "model_in_use"
    snapshot_delete(principal=olivia, snapshot=snapshot)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(detail).status_code == 204
    assert not ModelArtifact.objects.exists()
    assert not artifact_path(created["sha256"]).exists()
    assert AuditEvent.objects.filter(event="team.model.deleted").count() == 1


def test_a_snapshot_refuses_models_the_team_does_not_hold(
    acme_world: Acme, globex_world: Globex
) -> None:
    olivia = Principal.for_user(acme_world.olivia)
    oscar = APIClient()
    oscar.force_login(globex_world.oscar)
    foreign = upload(oscar, "globex", tiny_model(3.0)).json()["sha256"]
    with pytest.raises(ValidationError) as unknown_node:
        snapshot_create(
            principal=olivia,
            application=acme_world.line_1,
            name="foreign model",
            flows=infer_flow(foreign),
        )
    assert unknown_node.value.code == "unknown_model"
    assert "'m1' (onnx-infer)" in str(unknown_node.value)
    with pytest.raises(ValidationError) as unknown_ref:
        snapshot_create(
            principal=olivia,
            application=acme_world.line_1,
            name="foreign ref",
            flows=valid_flows(),
            model_refs=[{"name": "x", "sha256": foreign, "size": 10}],
        )
    assert unknown_ref.value.code == "unknown_model"
    assert "model_refs" in unknown_ref.value.fields
    assert not Snapshot.objects.exists()


def test_the_models_page_uploads_shows_inline_errors_and_refuses_a_viewer(
    acme_world: Acme, audit_log: Any
) -> None:
    from django.test import Client

    page = "/teams/acme/models/"
    eddie, vera = Client(), Client()
    eddie.force_login(acme_world.eddie)
    vera.force_login(acme_world.vera)
    refused = eddie.post(page, {"name": "bad", "file": SimpleUploadedFile("b.onnx", b"nope")})
    assert refused.status_code == 400
    assert "Not an ONNX model" in refused.content.decode()
    done = eddie.post(page, {"name": "good", "file": SimpleUploadedFile("g.onnx", tiny_model())})
    assert done.status_code == 302
    listing = vera.get(page).content.decode()
    assert "good" in listing
    assert "Upload a model" not in listing
    assert (
        vera.post(
            page, {"name": "x", "file": SimpleUploadedFile("x.onnx", tiny_model(4.0))}
        ).status_code
        == 403
    )
    artifact = ModelArtifact.objects.get()
    assert vera.post(f"{page}{artifact.pk}/delete/").status_code == 403
    assert eddie.post(f"{page}{artifact.pk}/delete/").status_code == 302
    assert not ModelArtifact.objects.exists()
    assert audit_log(acme_world.team).count("team.model.deleted") == 1
