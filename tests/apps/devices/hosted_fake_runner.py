"""A stand-in for ``edge-runner register`` / ``run`` that the hosting tests launch through the
real driver: ``register`` posts to the platform's real registration endpoint with the token
from the environment and keeps the answer as ``device/identity.json``; ``run`` listens on both
loopback ports, writes the environment it got to ``env.json`` and runs until SIGTERM.

    python hosted_fake_runner.py register --url URL --data-dir DIR --name NAME
    python hosted_fake_runner.py run --data-dir DIR --port P --status-port S
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType


def register(args: argparse.Namespace) -> int:
    body = {
        "token": os.environ.get("EDGE_RUNNER_REGISTRATION_TOKEN", ""),
        "name": args.name,
        "sealing_key": base64.b64encode(os.urandom(32)).decode(),
        "agent_version": "fake",
    }
    request = urllib.request.Request(  # noqa: S310  # the test's http:// URL
        args.url.rstrip("/") + "/api/v1/devices/register/",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        sys.stderr.write(f"edge-runner register: refused ({exc.code}) {exc.read()[:200]!r}\n")
        return 1
    device = Path(args.data_dir) / "device"
    device.mkdir(mode=0o700, parents=True, exist_ok=True)
    (device / "identity.json").write_text(json.dumps(answer))
    return 0


def run(args: argparse.Namespace) -> int:
    data = Path(args.data_dir)
    if not (data / "device" / "identity.json").exists():
        sys.stderr.write("edge-runner run: not registered\n")
        return 2
    listeners = []
    for port in (args.port, args.status_port):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        listeners.append(sock)
    (data / "env.json").write_text(json.dumps(dict(os.environ)))
    stopping = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    print(f"fake runner up on {args.port}", flush=True)
    while not stopping:
        time.sleep(0.05)
    print("fake runner stopping", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register")
    reg.add_argument("--url", required=True)
    reg.add_argument("--data-dir", required=True)
    reg.add_argument("--name", default=None)
    runner = sub.add_parser("run")
    runner.add_argument("--data-dir", required=True)
    runner.add_argument("--port", type=int, required=True)
    runner.add_argument("--status-port", type=int, required=True)
    args = parser.parse_args()
    return register(args) if args.command == "register" else run(args)


if __name__ == "__main__":
    sys.exit(main())
