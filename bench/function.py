"""Function-heavy flow on Node-RED and on Manifold in one run (issue #10).

    python bench/function.py --cmd '.venv/bin/python -m edge_runner serve --host 127.0.0.1 \
        --port {port} --userdir {userdir}' --vs "$(bash ../shared/bench/nodered.sh)"

Both engines get the same flows.json through the Admin API: a POST to an ``http in`` route
starts a generator function that sends N messages (node.send in a loop) -> function (arithmetic
on msg.payload) -> function (string work on msg.topic) -> counter function, which stores the
engine-side clock in global context at the last message; ``GET /result`` reads it. Prints msg/s,
the mean time per function call (three calls per message) and the ratio ours / Node-RED.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import tempfile
import time
import urllib.request

GEN = (
    "global.set('done', 0); global.set('start', Date.now());"
    "for (let i = 0; i < msg.payload.n; i++) {"
    " node.send({payload: i, topic: 'sensor/' + (i % 10)}); }"
    "return null;"
)
F1 = "msg.payload = msg.payload * 2 + 1; msg.ok = msg.payload % 3 === 0; return msg;"
F2 = "msg.topic = msg.topic.toUpperCase(); msg.parts = msg.topic.split('/').length; return msg;"
COUNT = (
    "const n = (context.get('n') || 0) + 1; context.set('n', n);"
    "if (n === global.get('expect')) { global.set('done', Date.now()); context.set('n', 0); }"
    "return null;"
)


def flow() -> list[dict[str, object]]:
    def fn(node_id: str, body: str, wires: list[list[str]]) -> dict[str, object]:
        return {
            "id": node_id,
            "type": "function",
            "z": "t",
            "func": body,
            "outputs": 1,
            "wires": wires,
        }

    return [
        {"id": "t", "type": "tab", "label": "bench"},
        {
            "id": "go",
            "type": "http in",
            "z": "t",
            "url": "/go",
            "method": "post",
            "wires": [["set", "ack"]],
        },
        fn("set", "global.set('expect', msg.payload.n); return msg;", [["gen"]]),
        {"id": "ack", "type": "http response", "z": "t", "wires": []},
        fn("gen", GEN, [["f1"]]),
        fn("f1", F1, [["f2"]]),
        fn("f2", F2, [["count"]]),
        fn("count", COUNT, [[]]),
        {
            "id": "res",
            "type": "http in",
            "z": "t",
            "url": "/result",
            "method": "get",
            "wires": [["read"]],
        },
        fn(
            "read",
            "msg.payload = {start: global.get('start'), done: global.get('done')}; return msg;",
            [["out"]],
        ),
        {"id": "out", "type": "http response", "z": "t", "wires": []},
    ]


def request(base: str, method: str, path: str, body: object = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Node-RED-Deployment-Type": "full"}
    # base is always http://127.0.0.1:<port> (built in run())
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)  # noqa: S310
    with urllib.request.urlopen(req, timeout=60) as answer:  # noqa: S310
        return bytes(answer.read())


def run(cmd: str, count: int, repeats: int) -> list[float]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    userdir = tempfile.mkdtemp()
    proc = subprocess.Popen(  # noqa: S603  # the engine command lines given by the operator
        cmd.format(port=port, userdir=userdir).split(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                request(base, "GET", "/flows")
                break
            except OSError:
                time.sleep(0.1)
        request(base, "POST", "/flows", flow())
        time.sleep(1.0)
        rates = []
        for _ in range(repeats + 1):  # the first run warms up
            request(base, "POST", "/go", {"n": count})
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                result = json.loads(request(base, "GET", "/result"))
                if result.get("done"):
                    break
                time.sleep(0.05)
            rates.append(count / max(result["done"] - result["start"], 1) * 1000)
        return rates[1:]
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cmd", required=True, help="our runner, with {port} and {userdir}")
    parser.add_argument("--vs", required=True, help="Node-RED, with {port} and {userdir}")
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ours = run(args.cmd, args.count, args.repeats)
    theirs = run(args.vs, args.count, args.repeats)
    for name, rates in (("manifold", ours), ("node-red", theirs)):
        best = sorted(rates)[len(rates) // 2]
        print(
            f"{name:9} {best:9.0f} msg/s  {1e6 / best / 3:7.1f} us per function call  "
            f"(runs: {', '.join(f'{r:.0f}' for r in rates)})"
        )
    ratio = sorted(ours)[len(ours) // 2] / sorted(theirs)[len(theirs) // 2]
    print(f"ratio manifold / node-red throughput: {ratio:.2f}")


if __name__ == "__main__":
    main()
