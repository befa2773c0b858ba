"""One supervisor for `make run`: the ASGI server, a Celery worker, Celery beat (and, when the
edge runner exists, a demo edge runner) as children of one process.

Each child runs in its own process group, so Ctrl-C reaches only the supervisor, which then stops
every child in order (SIGTERM, then SIGKILL after a grace period) and exits. If any child exits
on its own, the supervisor stops the rest and exits non-zero: a half-running platform (web up,
worker dead) would look healthy while silently dropping work.

    python -m config.run [--host 127.0.0.1] [--port 8000] [--no-beat] [--no-runner]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

BASE_DIR = Path(__file__).resolve().parent.parent
GRACE_SECONDS = 10.0
DEMO_RUNNER_PORT = 1880


@dataclass
class Child:
    """One supervised command and, once started, its process."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def demo_edge_runner(var_dir: Path) -> Child | None:
    """Extension point: the demo edge runner, started only once the runner package has a CLI.

    A later issue links it to the demo application; until then it runs standalone on
    127.0.0.1:1880 with its user directory under var/demo-runner.
    """
    if not (BASE_DIR / "edge_runner" / "__main__.py").exists():
        return None
    userdir = var_dir / "demo-runner"
    userdir.mkdir(parents=True, exist_ok=True)
    return Child(
        "runner",
        python_module(
            "edge_runner",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(DEMO_RUNNER_PORT),
            "--userdir",
            str(userdir),
        ),
    )


def default_children(
    host: str, port: int, *, beat: bool = True, runner: bool = True, var_dir: Path | None = None
) -> list[Child]:
    """The processes of a development platform."""
    var_dir = var_dir or Path(os.environ.get("MANIFOLD_VAR_DIR", BASE_DIR / "var"))
    children = [
        Child(
            "web",
            python_module(
                "uvicorn",
                "config.asgi:application",
                "--host",
                host,
                "--port",
                str(port),
                "--no-server-header",
                "--lifespan",
                "off",
                "--log-level",
                "info",
            ),
        ),
        Child(
            "worker",
            python_module(
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--hostname",
                "worker@%h",
            ),
        ),
    ]
    if beat:
        schedule = var_dir / "celery" / "beat-schedule"
        schedule.parent.mkdir(parents=True, exist_ok=True)
        children.append(
            Child(
                "beat",
                python_module(
                    "celery",
                    "-A",
                    "config",
                    "beat",
                    "--loglevel",
                    "INFO",
                    "--schedule",
                    str(schedule),
                ),
            )
        )
    if runner and (demo := demo_edge_runner(var_dir)) is not None:
        children.append(demo)
    return children


class Supervisor:
    """Start children, relay their output with a name prefix, stop all when one stops."""

    def __init__(self, children: Sequence[Child], out: IO[str] | None = None) -> None:
        self.children = list(children)
        self.out = out or sys.stdout
        self._print_lock = threading.Lock()
        self._stop = threading.Event()
        self._width = max((len(child.name) for child in self.children), default=4)

    def say(self, name: str, line: str) -> None:
        with self._print_lock:
            self.out.write(f"{name.ljust(self._width)} | {line}\n")
            self.out.flush()

    @staticmethod
    def process_of(child: Child) -> subprocess.Popen[bytes]:
        if child.process is None:
            raise RuntimeError(f"{child.name} was never started")
        return child.process

    def _relay(self, child: Child) -> None:
        stream = self.process_of(child).stdout
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            self.say(child.name, raw.decode(errors="replace").rstrip())
        stream.close()

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
        for child in self.children:
            child.process = subprocess.Popen(
                child.argv,
                cwd=BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: Ctrl-C goes to us, not to them
            )
            threading.Thread(target=self._relay, args=(child,), daemon=True).start()
            self.say("run", f"started {child.name} (pid {child.process.pid})")

    def request_stop(self, signum: int, _frame: FrameType | None = None) -> None:
        self.say("run", f"received {signal.Signals(signum).name}, stopping")
        self._stop.set()

    def wait(self) -> int:
        """Block until a signal or a child's exit; then stop everything. Return the exit code."""
        failed: Child | None = None
        while not self._stop.is_set():
            for child in self.children:
                if self.process_of(child).poll() is not None:
                    failed = child
                    break
            if failed is not None:
                break
            self._stop.wait(0.2)
        if failed is not None and failed.process is not None:
            self.say(
                "run",
                f"{failed.name} exited with code {failed.process.returncode}; stopping the others",
            )
        self.stop_all()
        return 1 if failed is not None else 0

    def stop_all(self) -> None:
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            # Only the child itself: Celery's main process stops its pool in order, which a
            # group-wide SIGTERM would cut short.
            self.process_of(child).terminate()
        started = time.monotonic()
        deadline = started + GRACE_SECONDS
        for child in running:
            try:
                self.process_of(child).wait(max(0.1, deadline - time.monotonic()))
                self.say("run", f"{child.name} stopped after {time.monotonic() - started:.1f} s")
            except subprocess.TimeoutExpired:
                self.say("run", f"{child.name} ignored SIGTERM for {GRACE_SECONDS:.0f} s; killing")
                self._signal_group(child, signal.SIGKILL)
                self.process_of(child).wait(5)
        # Grandchildren (Celery's pool processes) live in the same groups: make sure none stay.
        for child in self.children:
            self._signal_group(child, signal.SIGKILL)
        self.say("run", "all stopped")

    @staticmethod
    def _signal_group(child: Child, signum: int) -> None:
        if child.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-beat", action="store_true", help="do not start Celery beat")
    parser.add_argument("--no-runner", action="store_true", help="do not start the demo runner")
    options = parser.parse_args(argv)
    supervisor = Supervisor(
        default_children(
            options.host, options.port, beat=not options.no_beat, runner=not options.no_runner
        )
    )
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    supervisor.start()
    supervisor.say("run", f"Manifold on http://{options.host}:{options.port}/  (Ctrl-C stops all)")
    return supervisor.wait()


if __name__ == "__main__":
    sys.exit(main())
