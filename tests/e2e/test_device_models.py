"""Models delivered with snapshots, end to end: a model uploaded to the team's store ships with
a snapshot as a signed ``models/<sha256>.onnx`` part, a real agent downloads it over the bundle
endpoint into its engine's model store and the onnx-infer node loads it; a model whose bytes
were altered on the platform's disk is refused by the device, which keeps what it ran."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from apps.snapshots.artifacts import artifact_path
from tests.apps.snapshots.conftest import tiny_model
from tests.conftest import Acme
from tests.e2e.test_device_lifecycle import (
    Agent,
    Platform,
    api,
    deploy,
    make_snapshot,
    provision,
    running,
    settled,
    until,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def artifact_dir(tmp_path: Path) -> Iterator[Path]:
    with override_settings(ARTIFACT_DIR=tmp_path / "artifacts"):
        yield tmp_path / "artifacts"


def uploaded(world: Acme, data: bytes, name: str) -> str:
    answer = api(world.eddie).post(
        "/api/v1/teams/acme/models/",
        {"name": name, "file": SimpleUploadedFile(f"{name}.onnx", data)},
        format="multipart",
    )
    assert answer.status_code == 201, answer.json()
    return str(answer.json()["sha256"])


def scoring(label: str, sha256: str) -> list[dict[str, Any]]:
    """inject [[1, 2]] once -> onnx-infer (the model) -> debug."""
    tab = label.lower().replace(" ", "-")
    return [
        {"id": tab, "type": "tab", "label": label},
        {"id": f"{tab}-in", "type": "inject", "z": tab, "once": True, "props": [{"p": "payload"}],
         "payload": "[[1, 2]]", "payloadType": "json", "wires": [[f"{tab}-model"]]},
        {"id": f"{tab}-model", "type": "onnx-infer", "z": tab, "model": sha256,
         "wires": [[f"{tab}-out"]]},
        {"id": f"{tab}-out", "type": "debug", "z": tab, "active": True, "tosidebar": True,
         "complete": "payload", "targetType": "msg", "wires": []},
    ]  # fmt: skip


def model_green(agent: Agent, generation: int) -> dict[str, Any] | None:
    status = running(agent, generation)
    if status is None:
        return None
    (flow,) = status["flows"]
    return status if (flow.get("status") or {}).get("green", 0) >= 1 else None


def test_a_snapshot_model_reaches_the_device_and_runs(
    acme_world: Acme, platform: Platform, agents: Callable[[], Agent]
) -> None:
    agent = agents()
    device_id = provision(acme_world, platform, agent, "scorer-1")
    data = tiny_model(2.0)
    sha = uploaded(acme_world, data, "doubler")
    v1 = make_snapshot(acme_world, "with model", scoring("Scoring", sha))
    assert [ref["sha256"] for ref in v1.model_refs] == [sha]

    started = time.monotonic()
    target = deploy(acme_world, device_id, v1)
    assert target.envelope["manifest"]["parts"][f"models/{sha}.onnx"] == {
        "sha256": sha,
        "size": len(data),
    }
    applied = until(lambda: settled(target), 60, f"an apply_result\n{agent.output()}")
    print(f"\nmodel snapshot applied in {time.monotonic() - started:.2f} s")
    assert applied.outcome == "applied", (applied.outcome, applied.reason)
    installed = agent.paths.models / f"{sha}.onnx"
    assert hashlib.sha256(installed.read_bytes()).hexdigest() == sha
    status = until(
        lambda: model_green(agent, target.generation), 20, f"onnx-infer green\n{agent.output()}"
    )
    (flow,) = status["flows"]
    assert not flow.get("red"), flow

    # a second model replaces the first: the old one leaves the store once nothing ships it...
    other = tiny_model(3.0)
    sha2 = uploaded(acme_world, other, "tripler")
    v2 = make_snapshot(acme_world, "second model", scoring("Scoring", sha2))
    second = deploy(acme_world, device_id, v2)
    assert until(lambda: settled(second), 60, agent.output()).outcome == "applied"
    assert (agent.paths.models / f"{sha2}.onnx").is_file()
    # ...but the first stays while an installed snapshot (the rollback point) still ships it
    assert installed.is_file()


def test_a_model_altered_on_the_platform_disk_is_refused_by_the_device(
    acme_world: Acme, platform: Platform, agents: Callable[[], Agent]
) -> None:
    agent = agents()
    device_id = provision(acme_world, platform, agent, "scorer-2")
    good = tiny_model(2.0)
    v1 = make_snapshot(acme_world, "good", scoring("Scoring", uploaded(acme_world, good, "good")))
    first = deploy(acme_world, device_id, v1)
    assert until(lambda: settled(first), 60, agent.output()).outcome == "applied"
    before = sorted(p.name for p in agent.paths.models.iterdir())

    data = tiny_model(5.0)
    sha = uploaded(acme_world, data, "to be altered")
    v2 = make_snapshot(acme_world, "altered", scoring("Scoring", sha))
    stored = artifact_path(sha)
    altered = bytearray(stored.read_bytes())
    altered[-1] ^= 0xFF  # same size, different bytes
    stored.write_bytes(bytes(altered))

    second = deploy(acme_world, device_id, v2)
    result = until(lambda: settled(second), 60, f"an apply_result\n{agent.output()}")
    assert result.outcome in ("refused", "failed"), (result.outcome, result.reason)
    assert "hash" in result.reason.lower() or "sha" in result.reason.lower(), result.reason
    print(f"\naltered model: {result.outcome} ({result.reason})")
    # nothing changed on the device: the first snapshot still runs, the store is as it was
    assert running(agent, first.generation)
    assert sorted(p.name for p in agent.paths.models.iterdir()) == before
    assert not (agent.paths.models / f"{sha}.onnx").exists()
