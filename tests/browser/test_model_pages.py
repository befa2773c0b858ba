"""The team's Models page in real Chromium at desktop and phone widths: an upload, a refused
file with its inline error, the list (used by N snapshots), delete, and the snapshot detail
listing its models. Accessible, nothing overflowing sideways; screenshots in /tmp/shots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from apps.accounts.principal import Principal
from apps.snapshots.models import ModelArtifact
from apps.snapshots.services import snapshot_create
from tests.apps.snapshots.conftest import tiny_model
from tests.browser.conftest import log_in, shot
from tests.browser.test_page_tour import WIDTHS, _accessible, _no_sideways_scroll
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def artifact_dir(tmp_path: Path) -> Iterator[Path]:
    with override_settings(ARTIFACT_DIR=tmp_path / "artifacts"):
        yield tmp_path / "artifacts"


@pytest.mark.parametrize("device", list(WIDTHS))
def test_model_pages(
    device: str,
    acme_world: Acme,
    server: str,
    chromium: Any,
    tmp_path: Path,
) -> None:
    width, height = WIDTHS[device]
    # A refused file answers 400, which Chromium logs as a console error: tolerate that alone.
    context = chromium.new_context(viewport={"width": width, "height": height})
    problems: list[str] = []
    page = context.new_page()
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "status of 400" not in message.text
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))

    def check(name: str) -> None:
        _accessible(page)
        _no_sideways_scroll(page)
        shot(page, f"{device}-{name}")

    log_in(page, server, acme_world.eddie.email, PASSWORD)
    page.goto(server + "/teams/acme/")
    page.get_by_role("navigation", name="Team").get_by_role("link", name="Models").click()
    page.wait_for_url("**/teams/acme/models/")
    page.get_by_text("No models yet").wait_for()
    check("models-empty")

    bad = tmp_path / "notes.onnx"
    bad.write_bytes(b"these are notes, not a model")
    page.get_by_label("Name").fill("wrong file")
    page.get_by_label("ONNX model file").set_input_files(str(bad))
    page.get_by_role("button", name="Upload").click()
    page.get_by_text("Not an ONNX model").wait_for()
    check("models-refused")
    assert not ModelArtifact.objects.exists()

    for weight, name in (
        (2.0, "motor-3 anomaly (IsolationForest, trained 2026-11)"),
        (3.0, "spare"),
    ):
        path = tmp_path / f"{weight}.onnx"
        path.write_bytes(tiny_model(weight))
        page.get_by_label("Name").fill(name)
        page.get_by_label("ONNX model file").set_input_files(str(path))
        page.get_by_role("button", name="Upload").click()
        page.get_by_text(f"Model “{name}” uploaded.").wait_for()
    used = ModelArtifact.objects.get(name__startswith="motor-3")
    snapshot = snapshot_create(
        principal=Principal.for_user(acme_world.eddie),
        application=acme_world.line_1,
        name="scoring",
        flows=[
            {"id": "t", "type": "tab", "label": "Scoring"},
            {"id": "m", "type": "onnx-infer", "z": "t", "model": used.sha256, "wires": [[]]},
        ],
    )
    page.reload()
    page.get_by_text("1 snapshot", exact=True).wait_for()
    check("models-list")

    page.get_by_role("button", name="Delete spare").click()
    page.get_by_text("Model “spare” deleted.").wait_for()
    assert list(ModelArtifact.objects.values_list("name", flat=True)) == [used.name]
    assert page.get_by_role("button", name=f"Delete {used.name}").count() == 0  # in use

    page.goto(f"{server}/teams/acme/applications/line-1/snapshots/{snapshot.pk}/")
    page.get_by_text(used.sha256[:12]).wait_for()
    check("snapshot-detail-models")
    context.close()
    assert problems == []
