#!/usr/bin/env python3
"""Standalone-mode paths the shared benchmark does not isolate: `http in` round trips and the
`/comms` debug stream, for our runner and (optionally) Node-RED, through ENGINE_CONTRACT.md only.

    python bench/http_comms.py --cmd 'OURS {port} {userdir}' [--vs 'NODE-RED CMD'] [--n 2000]

* http: N sequential keep-alive GETs to `http in -> change -> http response`; requests/s and
  median/p99 round trip (client side, includes the HTTP stack of both ends).
* comms (ours only, python flavour): one inject -> python-function sending --comms-n messages ->
  debug (sidebar, payload); time until the N-th item arrives on /comms, items/s. Node-RED
  queues /comms items and sends at most 50 per 50 ms timer tick, so the figure is not compared.

Reuses the engine/HTTP/websocket helpers of ../shared/bench/bench.py (standard library only).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHARED_BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
sys.path.insert(0, str(SHARED_BENCH))

harness: Any = importlib.import_module("bench")  # the shared harness next to the repository

TAB = "tab_hc"


def http_flow(tag: str) -> list[dict[str, Any]]:
    return [
        {"id": TAB, "type": "tab", "label": "hc", "disabled": False, "info": ""},
        *harness.probe_nodes(TAB, tag, 100, 100),
    ]


def comms_flow(n: int) -> list[dict[str, Any]]:
    gen = (
        "for i in range(int(msg['payload'])):\n"
        "    node.send({'payload': i, 'topic': 'c'}, clone=False)\n"
        "return None\n"
    )
    return [
        *http_flow("comms"),
        harness.inject_node("c_go", TAB, "go", n, "num", 100, 200, [["c_gen"]]),
        {
            "id": "c_gen",
            "type": "python-function",
            "z": TAB,
            "name": "gen",
            "func": gen,
            "outputs": 1,
            "x": 300,
            "y": 200,
            "wires": [["c_dbg"]],
        },
        harness.debug_node("c_dbg", TAB, "c_dbg", 500, 200),
    ]


def measure_http(eng: harness.Engine, n: int) -> dict[str, float]:
    eng.deploy(http_flow("hc"), "hc", "full")
    client = harness.Http(eng.port)
    for _ in range(200):  # warm-up
        client.req("GET", "/bench/probe/hc")
    times = []
    t_all = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        status, body = client.req("GET", "/bench/probe/hc")
        times.append((time.perf_counter() - t0) * 1e6)
        if status != 200 or body != b"hc":
            raise RuntimeError(f"probe answered {status} {body[:50]!r}")
    total = time.perf_counter() - t_all
    client.close()
    times.sort()
    return {
        "http_req_per_s": n / total,
        "http_median_us": statistics.median(times),
        "http_p99_us": times[int(0.99 * (len(times) - 1))],
    }


def measure_comms(eng: harness.Engine, n: int) -> dict[str, float]:
    eng.deploy(comms_flow(n), "comms", "full")
    comms = harness.Comms(eng.port)
    comms.send({"subscribe": "debug"})
    time.sleep(0.3)
    t0 = time.perf_counter()
    eng.inject("c_go")
    seen = 0
    deadline = t0 + 120
    while seen < n and time.perf_counter() < deadline:
        try:
            _, topic, data = comms.q.get(timeout=max(0.01, deadline - time.perf_counter()))
        except Exception:  # queue.Empty at the deadline
            break
        if topic == "debug" and isinstance(data, dict) and data.get("id") == "c_dbg":
            seen += 1
    elapsed = time.perf_counter() - t0
    comms.close()
    return {"comms_items": float(seen), "comms_items_per_s": seen / elapsed}


def run(cmd: str, label: str, flavor: str, n: int, comms_n: int, workdir: str) -> dict[str, float]:
    eng = harness.Engine(cmd, flavor, label, workdir)
    eng.start()
    try:
        result = measure_http(eng, n)
        if flavor == "python":
            result.update(measure_comms(eng, comms_n))
        return result
    finally:
        eng.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cmd", required=True)
    parser.add_argument("--vs", default="")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--comms-n",
        type=int,
        default=10000,
        help="debug items in one burst (the runner queues at most 10000 per "
        "client; more are dropped with an explicit marker)",
    )
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="manifold-bench-hc-")
    engines = [("ours", args.cmd, "python")] + ([("node-red", args.vs, "js")] if args.vs else [])
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in engines}
    for rep in range(args.repeats):
        for label, cmd, flavor in engines:
            results[label].append(run(cmd, label, flavor, args.n, args.comms_n, workdir))
            print(f"repeat {rep + 1} {label}: {results[label][-1]}", flush=True)
    for label, reps in results.items():
        keys = reps[0].keys()
        summary = {k: statistics.median(r[k] for r in reps) for k in keys}
        print(label, " ".join(f"{k}={v:,.1f}" for k, v in summary.items()), flush=True)


if __name__ == "__main__":
    main()
