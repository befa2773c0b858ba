"""onnx-infer overhead: messages through the engine vs raw ``session.run`` in the same process.

    .venv/bin/python bench/bench_onnx.py [--messages 20000] [--repeats 7]

1. A 1x8 float MatMul model (built with onnx.helper): inject -> onnx-infer -> sink through the
   engine's direct dispatch (``engine.deliver``, what an inject or a poll does), against
   ``session.run`` on an array built once (the floor) and on the same JSON list the message
   carries (what any caller with a list pays). Target: node ≤ 1.25x raw.
2. Batching throughput for an skl2onnx IsolationForest (opset {"": 17, "ai.onnx.ml": 3}):
   rows/s through the node at batch 1, 10, 100, 1000 vs raw ``session.run``.

Best of ``--repeats`` rounds, node and raw rounds interleaved (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import edge_runner.testing  # noqa: F401  # registers the "helper" sink type
from edge_runner.runtime.engine import Engine
from edge_runner.runtime.model_store import ModelStore
from edge_runner.runtime.paths import RunnerPaths


def linear_model() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    w = helper.make_tensor("W", TensorProto.FLOAT, [8, 1], [0.125] * 8)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "linear", [x], [y], [w]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def forest_model() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(0)
    data = rng.normal(0, 1, size=(2000, 8)).astype(np.float32)
    forest = IsolationForest(n_estimators=100, random_state=0).fit(data)
    onx = to_onnx(forest, data[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    return bytes(onx.SerializeToString())


def session(data: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def per_call(fn: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return (time.perf_counter() - start) / n


async def engine_for(paths: RunnerPaths, sha: str) -> tuple[Engine, Any, Any]:
    engine = Engine(paths=paths)
    flow = [
        {"id": "t1", "type": "tab", "label": "bench"},
        {
            "id": "m",
            "type": "onnx-infer",
            "z": "t1",
            "model": sha,  # default config: msg.model metadata attached
            "wires": [["sink"]],
        },
        {"id": "sink", "type": "helper", "z": "t1", "wires": []},
    ]
    await engine.deploy(flow)
    rt = engine.nodes["m"]
    if rt.last_status is None or rt.last_status.fill != "green":
        raise SystemExit(f"onnx-infer did not start: {rt.last_status}")
    return engine, rt, engine.nodes["sink"]


async def overhead(paths: RunnerPaths, messages: int, repeats: int) -> None:
    data = linear_model()
    sha = ModelStore(paths.models).add_bytes(data)
    engine, rt, _sink = await engine_for(paths, sha)
    sess = session(data)
    row = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    prebuilt = np.asarray([row], np.float32)
    deliver = engine.deliver

    def node(n: int) -> None:
        msgs = [{"payload": row, "_msgid": "m"} for _ in range(n)]
        for msg in msgs:
            deliver(rt, msg)

    def raw_array(n: int) -> None:
        run = sess.run
        for _ in range(n):
            run(None, {"x": prebuilt})

    def raw_list(n: int) -> None:
        run = sess.run
        for _ in range(n):
            run(None, {"x": np.asarray([row], np.float32)})

    for fn in (node, raw_array, raw_list):  # warm up
        fn(2000)
    best = {"node": 1.0, "raw_array": 1.0, "raw_list": 1.0}
    for _ in range(repeats):
        for name, fn in (("node", node), ("raw_array", raw_array), ("raw_list", raw_list)):
            best[name] = min(best[name], per_call(fn, messages))
    await engine.stop()
    print(f"1x8 MatMul model, per message (best of {repeats} x {messages}):")
    print(f"  raw session.run, prebuilt array : {best['raw_array'] * 1e6:7.2f} µs")
    print(f"  raw session.run, from the list  : {best['raw_list'] * 1e6:7.2f} µs")
    print(f"  inject -> onnx-infer -> sink    : {best['node'] * 1e6:7.2f} µs")
    print(
        f"  ratio node / raw (prebuilt)     : {best['node'] / best['raw_array']:7.2f}x"
        "   (target <= 1.25x)"
    )
    print(f"  ratio node / raw (from list)    : {best['node'] / best['raw_list']:7.2f}x")


async def batching(paths: RunnerPaths, repeats: int) -> None:
    data = forest_model()
    sha = ModelStore(paths.models).add_bytes(data)
    engine, rt, _sink = await engine_for(paths, sha)
    sess = session(data)
    rng = np.random.default_rng(1)
    print("IsolationForest (100 trees, 8 features, skl2onnx opset 17 / ml 3), rows/s:")
    print("   batch      node       raw   node µs/row")
    for batch in (1, 10, 100, 1000):
        rows = rng.normal(0, 1, size=(batch, 8)).astype(np.float32)
        payload = rows.tolist() if batch > 1 else rows[0].tolist()
        calls = max(20, 4000 // batch)

        def node(n: int, payload: Any = payload) -> None:
            msgs = [{"payload": payload, "_msgid": "m"} for _ in range(n)]
            for msg in msgs:
                engine.deliver(rt, msg)

        def raw(n: int, rows: Any = rows) -> None:
            for _ in range(n):
                sess.run(None, {"X": rows})

        node(5)
        raw(5)
        t_node = t_raw = 1.0
        for _ in range(max(2, repeats // 2)):
            t_node = min(t_node, per_call(node, calls))
            t_raw = min(t_raw, per_call(raw, calls))
        print(
            f"  {batch:6d} {batch / t_node:9.0f} {batch / t_raw:9.0f}   {t_node / batch * 1e6:8.1f}"
        )
    await engine.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-forest", action="store_true")
    args = parser.parse_args()
    paths = RunnerPaths.temporary("bench-onnx-")
    try:
        await overhead(paths, args.messages, args.repeats)
        if not args.skip_forest:
            await batching(paths, args.repeats)
    finally:
        paths.remove_all()


if __name__ == "__main__":
    asyncio.run(main())
