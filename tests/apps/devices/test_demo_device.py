"""``manage.py demo_device`` (the platform side of `make run`'s demo device): the demo flow's
model goes into the demo team's model store and the demo snapshot ships it."""

from __future__ import annotations

import hashlib
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from apps.devices.models import ProvisioningToken
from apps.snapshots.models import ModelArtifact, Snapshot
from tests.apps.snapshots.conftest import tiny_model

pytestmark = pytest.mark.django_db


def demo_files(tmp_path: Path, data: bytes) -> tuple[Path, Path]:
    models = tmp_path / "runner" / "models"
    models.mkdir(parents=True)
    sha = hashlib.sha256(data).hexdigest()
    (models / f"{sha}.onnx").write_bytes(data)
    flows = tmp_path / "runner" / "flows.json"
    flows.write_text(
        json.dumps(
            [
                {"id": "t", "type": "tab", "label": "Motor"},
                {"id": "m", "type": "onnx-infer", "z": "t", "name": "IsolationForest",
                 "model": sha, "wires": [[]]},
            ]
        )
    )  # fmt: skip
    return flows, models


def test_the_demo_snapshot_ships_the_generated_model(tmp_path: Path) -> None:
    data = tiny_model()
    flows, models = demo_files(tmp_path, data)
    with override_settings(VAR_DIR=tmp_path / "var", ARTIFACT_DIR=tmp_path / "artifacts"):
        call_command("seed_demo", stdout=StringIO())
        out = StringIO()
        for _ in range(2):  # idempotent: the second run finds the model and the snapshot
            call_command(
                "demo_device",
                flows=str(flows),
                token_file=str(tmp_path / "token"),
                models=str(models),
                stdout=out,
            )
    (artifact,) = ModelArtifact.objects.filter(team__slug="acme")
    assert artifact.sha256 == hashlib.sha256(data).hexdigest()
    assert artifact.name == "IsolationForest (demo)"
    (snapshot,) = Snapshot.objects.filter(team__slug="acme")
    assert snapshot.model_refs == [
        {"name": artifact.name, "sha256": artifact.sha256, "size": len(data)}
    ]
    assert ProvisioningToken.objects.filter(snapshot=snapshot).count() == 2
    assert "uploaded" in out.getvalue()
    assert "already in the team's models" in out.getvalue()


def test_a_missing_demo_model_is_a_clear_error(tmp_path: Path) -> None:
    flows, models = demo_files(tmp_path, tiny_model())
    for stored in models.iterdir():
        stored.unlink()
    with override_settings(VAR_DIR=tmp_path / "var", ARTIFACT_DIR=tmp_path / "artifacts"):
        call_command("seed_demo", stdout=StringIO())
        with pytest.raises(CommandError, match="cannot read the demo model"):
            call_command(
                "demo_device", flows=str(flows), token_file=str(tmp_path / "t"), models=str(models)
            )
    assert not Snapshot.objects.exists()
