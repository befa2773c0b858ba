"""The demo edge runner of `make run`, as a managed device: register once, then run.

    python -m config.demo_runner --url http://127.0.0.1:8000 --data-dir var/demo-runner \\
        --token-file var/demo-device-token [--name N] [--port 1880] [--status-port 1879]

When the data directory holds no device identity yet, it waits for the platform to answer
``/healthz``, registers with the one-use token ``manage.py demo_device`` wrote (the token names
the demo application and its motor-anomaly snapshot as the first target), and deletes the token
file. Then it becomes ``edge-runner run``: the agent that owns the link, the signed snapshot
store and the engine, exactly as on a real device. Without an identity and without a token
(the platform side could not be prepared) it runs the flows standalone (``edge-runner serve``)
and says why. Imports nothing of Django.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from edge_runner.runtime.paths import RunnerPaths

WAIT_SECONDS = 180.0


def say(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def wait_for_platform(url: str, timeout: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):  # noqa: S310  # own URL
                return True
        except urllib.error.HTTPError:
            return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    return False


def register(args: argparse.Namespace, token_file: Path) -> bool:
    token = token_file.read_text().strip()
    if not wait_for_platform(args.url):
        say(f"demo device: the platform at {args.url} did not answer; not registered")
        return False
    done = subprocess.run(  # noqa: S603  # our interpreter, fixed module
        [
            sys.executable,
            "-m",
            "edge_runner",
            "register",
            "--url",
            args.url,
            "--data-dir",
            args.data_dir,
            "--name",
            args.name,
        ],
        env={**os.environ, "EDGE_RUNNER_REGISTRATION_TOKEN": token},
        check=False,
    )
    if done.returncode != 0:
        say(f"demo device: registration failed (exit {done.returncode})")
        return False
    token_file.unlink(missing_ok=True)
    say(f"demo device: registered as '{args.name}'")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The demo edge runner, as a managed device.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--name", default="motor-3 edge")
    parser.add_argument("--port", type=int, default=1880)
    parser.add_argument("--status-port", type=int, default=1879)
    args = parser.parse_args(argv)
    paths = RunnerPaths.at(args.data_dir)
    token_file = Path(args.token_file)
    managed = paths.identity.exists()
    if not managed and token_file.exists():
        managed = register(args, token_file)
    if managed:
        command = ["run", "--status-port", str(args.status_port)]
    else:
        say("demo device: no device identity; running the flows standalone")
        command = ["serve", "--host", "127.0.0.1"]
    argv_run = [
        sys.executable,
        "-m",
        "edge_runner",
        *command,
        "--data-dir",
        str(paths.root),
        "--port",
        str(args.port),
        "--log-level",
        "info",
    ]
    os.execv(sys.executable, argv_run)  # noqa: S606  # replace this process: signals reach the runner


if __name__ == "__main__":
    sys.exit(main())
