"""onnx-infer: models from the content-hash store, mapping, batching, pre/post-processing,
metadata, bad input and bad models. Models are built here with onnx.helper and skl2onnx."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

from edge_runner.runtime.engine import DeployError
from edge_runner.runtime.model_store import ModelStore, main, read_header
from edge_runner.runtime.paths import RunnerPaths
from edge_runner.testing import FlowHarness

# Outside `make test-fast`: builds and runs real models.
pytestmark = pytest.mark.slow

WEIGHTS = [0.5, -1.0, 2.0, 0.0, 1.0, 1.0, -0.5, 0.25]


def linear_model() -> bytes:
    """y[N,1] = x[N,8] @ WEIGHTS."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    w = helper.make_tensor("W", TensorProto.FLOAT, [8, 1], WEIGHTS)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "linear", [x], [y], [w]
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="manifold-tests"
    )
    model.ir_version = 8
    return bytes(model.SerializeToString())


def two_io_model() -> bytes:
    """sum = a + b, diff = a - b over [N,3] float tensors."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 3])
    total = helper.make_tensor_value_info("sum", TensorProto.FLOAT, [None, 3])
    diff = helper.make_tensor_value_info("diff", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Sub", ["a", "b"], ["diff"]),
        ],
        "two",
        [a, b],
        [total, diff],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    """The model store of a runner in ``tmp_path`` (``RunnerPaths(store.root.parent)``)."""
    return ModelStore(RunnerPaths(tmp_path).models)


def flow(model: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        {"id": "m", "type": "onnx-infer", "model": model, "wires": [["out"]], **fields},
        {"id": "out", "type": "helper"},
        {"id": "c", "type": "catch", "scope": None, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]


async def test_one_row_runs_and_carries_the_model_metadata(store: ModelStore) -> None:
    sha = store.add_bytes(linear_model())
    async with FlowHarness(flow(sha), paths=RunnerPaths(store.root.parent)) as h:
        row = [1, 2, 3, 4, 5, 6, 7, 8]
        h.receive("m", {"payload": row, "topic": "motor"})
        (msg,) = await h.wait("out")
        assert msg["payload"] == [pytest.approx(float(np.dot(row, WEIGHTS)))]
        assert msg["topic"] == "motor"
        model = msg["model"]
        assert model["sha256"] == sha
        assert model["opset"] == {"": 17}
        assert model["producer"] == "manifold-tests"
        assert model["inputs"] == [{"name": "x", "type": "tensor(float)", "shape": [None, 8]}]
        assert model["outputs"][0]["name"] == "y"
        (status,) = h.statuses("m")
        assert status["fill"] == "green"
        assert status["text"] == "x[?,8] → y · opset 17"


async def test_a_list_of_rows_is_one_batch_and_outputs_stay_per_row(store: ModelStore) -> None:
    sha = store.add_bytes(linear_model())
    async with FlowHarness(flow(sha, modelProperty=""), paths=RunnerPaths(store.root.parent)) as h:
        rows = [[1] * 8, [0] * 8, [2, 0, 0, 0, 0, 0, 0, 0]]
        h.receive("m", {"payload": rows})
        (msg,) = await h.wait("out")
        assert msg["payload"] == [[pytest.approx(sum(WEIGHTS))], [0.0], [1.0]]
        assert "model" not in msg


async def test_scale_and_offset_preprocess_each_feature(store: ModelStore) -> None:
    sha = store.add_bytes(linear_model())
    # feature 0 is doubled and shifted by 1, the rest are zeroed
    async with FlowHarness(
        flow(sha, scale="2,0,0,0,0,0,0,0", offset=[1, 0, 0, 0, 0, 0, 0, 0]),
        paths=RunnerPaths(store.root.parent),
    ) as h:
        h.receive("m", {"payload": [3, 9, 9, 9, 9, 9, 9, 9]})
        (msg,) = await h.wait("out")
        assert msg["payload"] == [pytest.approx((3 * 2 + 1) * 0.5)]


async def test_named_inputs_and_outputs_map_to_properties(store: ModelStore) -> None:
    sha = store.add_bytes(two_io_model())
    fields = {
        "inputs": [
            {"name": "a", "property": "payload.left"},
            {"name": "b", "property": "payload.right"},
        ],
        "outputs": [
            {"name": "diff", "property": "result.diff"},
            {"name": "sum", "property": "total"},
        ],
    }
    async with FlowHarness(flow(sha, **fields), paths=RunnerPaths(store.root.parent)) as h:
        h.receive("m", {"payload": {"left": [5, 5, 5], "right": [1, 2, 3]}})
        (msg,) = await h.wait("out")
        assert msg["result"] == {"diff": [4.0, 3.0, 2.0]}
        assert msg["total"] == [6.0, 7.0, 8.0]


async def test_several_outputs_without_mapping_become_a_dict(store: ModelStore) -> None:
    sha = store.add_bytes(two_io_model())
    fields = {"inputs": [{"name": "a", "property": "payload"}, {"name": "b", "property": "b"}]}
    async with FlowHarness(flow(sha, **fields), paths=RunnerPaths(store.root.parent)) as h:
        h.receive("m", {"payload": [[1, 1, 1], [2, 2, 2]], "b": [[1, 1, 1], [1, 1, 1]]})
        (msg,) = await h.wait("out")
        assert msg["payload"] == {"sum": [[2.0] * 3, [3.0] * 3], "diff": [[0.0] * 3, [1.0] * 3]}


async def test_argmax_maps_to_labels(store: ModelStore) -> None:
    sha = store.add_bytes(two_io_model())
    fields = {
        "inputs": [{"name": "a"}, {"name": "b", "property": "zero"}],
        "outputs": [{"name": "sum", "property": "scores"}],
        "postprocess": "argmax",
        "labels": "idle, running, fault",
    }
    async with FlowHarness(flow(sha, **fields), paths=RunnerPaths(store.root.parent)) as h:
        h.receive("m", {"payload": [0.1, 0.2, 0.9], "zero": [0, 0, 0]})
        h.receive("m", {"payload": [[3, 0, 0], [0, 4, 0]], "zero": [[0, 0, 0], [0, 0, 0]]})
        one, batch = await h.wait("out", 2)
        assert one["label"] == "fault"
        assert batch["label"] == ["idle", "running"]


async def test_threshold_below_marks_anomalies(store: ModelStore) -> None:
    sha = store.add_bytes(linear_model())
    fields = {
        "postprocess": "threshold",
        "threshold": 0,
        "thresholdMode": "below",
        "labels": ["normal", "anomaly"],
        "labelProperty": "alert.state",
    }
    async with FlowHarness(flow(sha, **fields), paths=RunnerPaths(store.root.parent)) as h:
        h.receive("m", {"payload": [[0, 1, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]]})
        (msg,) = await h.wait("out")
        assert msg["alert"] == {"state": ["anomaly", "normal"]}


async def test_bad_messages_go_to_catch_and_the_node_keeps_running(store: ModelStore) -> None:
    sha = store.add_bytes(linear_model())
    async with FlowHarness(flow(sha), paths=RunnerPaths(store.root.parent)) as h:
        h.receive("m", {"payload": [1, 2, 3]})  # 3 features for an 8-wide model
        h.receive("m", {"payload": ["a", "b"]})
        h.receive("m", {"payload": [[[1] * 8]]})  # one dimension too many
        h.receive("m", {"topic": "no payload"})
        h.receive("m", {"payload": [5]})  # must not be broadcast to 8 features
        h.receive("m", {"payload": [0] * 8})
        errs = await h.wait("errs", 5)
        texts = [e["error"]["message"] for e in errs]
        assert texts[0].startswith("inference failed:")
        assert "8" in texts[0]
        assert "not a float32 tensor for input 'x'" in texts[1]
        assert texts[2] == (
            "input 'x' expects 1 or 2 dimensions (model shape [?,8]), got shape [1, 1, 8]"
        )
        assert texts[3] == "msg.payload is missing (input 'x')"
        assert texts[4].startswith("inference failed:")
        (ok,) = await h.wait("out")
        assert ok["payload"] == [0.0]


async def test_isolation_forest_from_skl2onnx_flags_the_outlier(store: ModelStore) -> None:
    from skl2onnx import to_onnx
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(7)
    normal = rng.normal(0, 1, size=(400, 4)).astype(np.float32)
    forest = IsolationForest(n_estimators=50, random_state=0).fit(normal)
    onx = to_onnx(forest, normal[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    sha = store.add_bytes(onx.SerializeToString())
    fields = {
        "outputs": [
            {"name": "label", "property": "result.label"},
            {"name": "scores", "property": "result.score"},
        ]
    }
    async with FlowHarness(flow(sha, **fields), paths=RunnerPaths(store.root.parent)) as h:
        h.receive("m", {"payload": [[0, 0, 0, 0], [9, -9, 9, -9]]})
        (msg,) = await h.wait("out")
        assert msg["result"]["label"] == [[1], [-1]]
        assert msg["result"]["score"][1][0] < 0 < msg["result"]["score"][0][0]
        assert msg["model"]["opset"] == {"": 17, "ai.onnx.ml": 3}
        # an output mapped under the input rows (a list) cannot be set: a clear error
        h.receive("m", {"payload": [0, 0, 0, 0], "result": [1]})
        (err,) = await h.wait("errs")
        assert err["error"]["message"] == (
            "cannot set msg.result.label for output 'label': a parent property is not an object"
        )


async def test_a_model_missing_from_the_store_fails_the_node_not_the_deploy(
    store: ModelStore,
) -> None:
    missing = hashlib.sha256(b"nothing").hexdigest()
    async with FlowHarness(flow(missing), paths=RunnerPaths(store.root.parent)) as h:
        (status,) = h.statuses("m")
        assert status["fill"] == "red"
        assert "not in the model store" in status["text"]


async def test_a_corrupted_model_file_is_refused(store: ModelStore) -> None:
    sha = store.add_bytes(linear_model())
    path = store.path_for(sha)
    path.write_bytes(path.read_bytes()[:-10])
    async with FlowHarness(flow(sha), paths=RunnerPaths(store.root.parent)) as h:
        (status,) = h.statuses("m")
        assert status["fill"] == "red"
        assert "corrupted" in status["text"]
        h.receive("m", {"payload": [0] * 8})
        await h.quiet(0.05)
        assert "out" not in h.messages


async def test_bytes_that_are_not_onnx_fail_with_a_clear_status(store: ModelStore) -> None:
    sha = store.add_bytes(b"this is not a model")
    async with FlowHarness(flow(sha), paths=RunnerPaths(store.root.parent)) as h:
        (status,) = h.statuses("m")
        assert status["fill"] == "red"
        assert "cannot be loaded" in status["text"]


async def test_invalid_config_is_rejected_at_deploy(store: ModelStore) -> None:
    for fields, expected in (
        ({"model": "model.onnx"}, "not a SHA-256 hash"),
        ({"model": ""}, "choose a model"),
        ({"model": "a" * 64, "scale": "1,x"}, "comma-separated numbers"),
        ({"model": "a" * 64, "postprocess": "threshold", "labels": "a,b,c"}, "two labels"),
        ({"model": "a" * 64, "inputs": [{"shape": "1,0"}]}, "dimensions must be positive"),
    ):
        nodes = [{"id": "m", "type": "onnx-infer", "wires": [], **fields}]
        with pytest.raises(DeployError) as info:
            async with FlowHarness(nodes, paths=RunnerPaths(store.root.parent)):
                pass
        assert expected in info.value.errors[0]["error"]


async def test_unknown_input_name_fails_the_node(store: ModelStore) -> None:
    sha = store.add_bytes(linear_model())
    async with FlowHarness(
        flow(sha, inputs=[{"name": "features"}]), paths=RunnerPaths(store.root.parent)
    ) as h:
        (status,) = h.statuses("m")
        assert status["fill"] == "red"
        assert "no input 'features'" in status["text"]


def test_store_cli_adds_by_hash_and_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "linear.onnx"
    data = linear_model()
    source.write_bytes(data)
    assert main(["add", str(source), "--userdir", str(tmp_path / "u")]) == 0
    digest = capsys.readouterr().out.strip()
    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "u" / "models" / f"{digest}.onnx").read_bytes() == data
    assert main(["add", str(source), "--userdir", str(tmp_path / "u")]) == 0  # idempotent
    capsys.readouterr()
    assert main(["list", "--userdir", str(tmp_path / "u")]) == 0
    assert capsys.readouterr().out == f"{digest}  {len(data)}\n"
    assert main(["add", str(tmp_path / "nope.onnx"), "--userdir", str(tmp_path)]) == 2
    assert not list(tmp_path.glob("u/models/*.tmp"))


def test_header_reader_matches_onnx() -> None:
    ir_version, opsets, producer = read_header(linear_model())
    assert (ir_version, opsets, producer) == (8, {"": 17}, "manifold-tests")


async def test_fast_and_general_paths_agree(store: ModelStore) -> None:
    """One row of the model's width takes the pre-bound lane; the same row inside a batch, as a
    numpy array, or with scaling takes either path and must give the same numbers."""
    sha = store.add_bytes(linear_model())
    row = [0.5, 1.5, -2.0, 3.0, 0.0, 1.0, 2.0, -1.0]
    expected = float(np.dot(row, WEIGHTS))
    async with FlowHarness(flow(sha, modelProperty=""), paths=RunnerPaths(store.root.parent)) as h:
        assert h.node("m")._lane is not None  # type: ignore[attr-defined]  # white-box check
        h.receive("m", {"payload": row})
        h.receive("m", {"payload": [row, row]})
        h.receive("m", {"payload": np.asarray(row, np.float32)})
        h.receive("m", {"payload": [str(v) for v in row]})
        single, batch, array, texts = await h.wait("out", 4)
        assert single["payload"] == [pytest.approx(expected)]
        assert batch["payload"] == [[pytest.approx(expected)]] * 2
        assert array["payload"] == [pytest.approx(expected)]
        assert texts["payload"] == [pytest.approx(expected)]
    async with FlowHarness(
        flow(sha, scale=[2], offset=[1], modelProperty=""), paths=RunnerPaths(store.root.parent)
    ) as h:
        h.receive("m", {"payload": row})
        h.receive("m", {"payload": [row]})
        one, many = await h.wait("out", 2)
        scaled = float(np.dot([v * 2 + 1 for v in row], WEIGHTS))
        assert one["payload"] == [pytest.approx(scaled)]
        assert many["payload"] == [[pytest.approx(scaled)]]
