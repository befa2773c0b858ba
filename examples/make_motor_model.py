"""Train the motor-anomaly model and put it in a runner's model store.

    python -m examples.make_motor_model --userdir DIR [--flow examples/motor-anomaly.json]

An IsolationForest learns what windows of normal operation look like -- the same features the
flow's ``window`` node computes (mean, std, RMS, peak, peak-to-peak of vibration, then of
current, over 20 polls) from the same signal model the simulator uses -- and is exported with
skl2onnx (opset {"": 17, "ai.onnx.ml": 3}). Its ``scores`` output is negative for anomalies.
Everything is seeded, so the same library versions give the same bytes and the same hash;
``--flow`` writes that hash into the flow's ``onnx-infer`` node.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edge_runner.nodes.window import Feature, features_of
from edge_runner.runtime.model_store import ModelStore
from edge_runner.runtime.paths import RunnerPaths
from examples.motor_sim import motor_reading

FEATURES: tuple[Feature, ...] = ("mean", "std", "rms", "peak", "p2p")
TAGS = ("vibration", "current")
WINDOW = 20  # samples per window (the flow polls every 100 ms)
EVERY = 5  # the flow emits every 5th poll
POLL_S = 0.1
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def feature_rows(seconds: float, fault: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    samples = [motor_reading(i * POLL_S, fault, rng) for i in range(int(seconds / POLL_S))]
    rows = []
    for end in range(WINDOW, len(samples) + 1, EVERY):
        window = samples[end - WINDOW : end]
        row: list[float] = []
        for index, _tag in enumerate(TAGS):
            row.extend(features_of([s[index] for s in window], FEATURES))
        rows.append(row)
    return np.asarray(rows, dtype=np.float32)


def build_model() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.ensemble import IsolationForest

    normal = feature_rows(1800, fault=False, seed=1)
    forest = IsolationForest(n_estimators=100, contamination=0.001, random_state=0)
    forest.fit(normal)
    onx = to_onnx(forest, normal[:1], target_opset=TARGET_OPSET)
    # skl2onnx fills opset_import from a set: its order follows the string hash seed of the
    # process. Sort it so the bytes (and the content hash) are the same on every run.
    imports = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    for domain, version in imports:
        onx.opset_import.add(domain=domain, version=version)
    onx.doc_string = "manifold motor-anomaly IsolationForest: " + ",".join(
        f"{tag}.{name}" for tag in TAGS for name in FEATURES
    )
    return bytes(onx.SerializeToString())


def write_flow_hash(flow_path: Path, digest: str) -> None:
    nodes = json.loads(flow_path.read_text())
    for node in nodes:
        if node.get("type") == "onnx-infer":
            node["model"] = digest
    flow_path.write_text(json.dumps(nodes, indent=4) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the motor-anomaly model.")
    parser.add_argument("--userdir", required=True, help="the runner's user directory")
    parser.add_argument("--flow", type=Path, help="write the model hash into this flow file")
    args = parser.parse_args(argv)
    digest = ModelStore(RunnerPaths.at(args.userdir).models).add_bytes(build_model())
    if args.flow is not None:
        write_flow_hash(args.flow, digest)
    sys.stdout.write(digest + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
