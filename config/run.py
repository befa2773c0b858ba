"""One supervisor for `make run`: the ASGI server, a Celery worker, Celery beat, the hosted
instances' reconciler (``manage.py hosted_runners``), the demo edge runner and the simulated
motor its demo flow polls, as children of one process.

Before starting them it prepares the demo runner's user directory once: a userdir without
flows.json gets the motor-anomaly model and flow (examples/); an existing flows.json is kept.

Each child runs in its own process group, so Ctrl-C reaches only the supervisor, which then stops
every child in order (SIGTERM, then SIGKILL after a grace period) and exits. If any child exits
on its own, the supervisor stops the rest and exits non-zero: a half-running platform (web up,
worker dead) would look healthy while silently dropping work.

    python -m config.run [--host 127.0.0.1] [--port 8000] [--no-beat] [--no-runner]
                         [--runner-port 1880] [--motor-port 5020]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Literal

from config.websocket import WS_OPTION

BASE_DIR = Path(__file__).resolve().parent.parent
GRACE_SECONDS = 10.0
DEMO_RUNNER_PORT = 1880
DEMO_MOTOR_PORT = 5020  # examples/motor-anomaly.json polls the simulator here
DEMO_FLOW = BASE_DIR / "examples" / "motor-anomaly.json"
# What examples/make_motor_model.py needs beyond the runtime (the `demo` extra).
DEMO_MODEL_MODULES: tuple[str, ...] = ("sklearn", "skl2onnx", "onnx")
MODEL_TIMEOUT_SECONDS = 300.0
FLOWS_FILE = "flows.json"


@dataclass
class Child:
    """One supervised command and, once started, its process."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DemoPreparation:
    """What `prepare_demo_userdir` did: ``prepared`` (model + flow written), ``kept`` (a
    flows.json was already there) or ``empty`` (no flow: the runner starts with none)."""

    outcome: Literal["prepared", "kept", "empty"]
    message: str


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def runner_available() -> bool:
    return (BASE_DIR / "edge_runner" / "__main__.py").exists()


def demo_userdir(var_dir: Path) -> Path:
    return var_dir / "demo-runner"


def demo_flow(motor_port: int, model_digest: str) -> list[dict[str, Any]]:
    """examples/motor-anomaly.json polling the simulator on ``motor_port`` with the model the
    generator just stored (its hash is the same as the shipped one unless library versions
    differ; writing it keeps the demo working either way)."""
    nodes: list[dict[str, Any]] = json.loads(DEMO_FLOW.read_text())
    for node in nodes:
        if node.get("type") == "modbus-client":
            node["tcpPort"] = motor_port
        elif node.get("type") == "onnx-infer":
            node["model"] = model_digest
    return nodes


def write_new_file(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists; never replaces a file. Temp file + fsync
    + hard link (which refuses an existing name) + fsync(dir): after a crash the file is either
    absent or complete, so a half-written demo flow is never mistaken for the user's."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def generate_demo_model(
    userdir: Path, modules: Sequence[str] = DEMO_MODEL_MODULES
) -> tuple[str | None, str]:
    """Run examples/make_motor_model.py into the userdir's model store, in a child process so
    scikit-learn never stays loaded in the supervisor. Return (digest, "") or (None, reason)."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        return None, (
            f"the model generator needs {', '.join(missing)} (the `demo` extra: "
            f"`{Path(sys.executable).parent / 'pip'} install -e '.[demo]'`, which `make run` does)"
        )
    try:
        done = subprocess.run(
            python_module("examples.make_motor_model", "--userdir", str(userdir)),
            cwd=BASE_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MODEL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"the model generator took longer than {MODEL_TIMEOUT_SECONDS:.0f} s"
    output = done.stdout.strip().splitlines()
    digest = output[-1].strip() if output else ""
    if done.returncode != 0 or not re.fullmatch(r"[0-9a-f]{64}", digest):
        errors = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = errors[-1] if errors else f"exit code {done.returncode}, no digest printed"
        return None, f"the model generator failed: {reason}"
    return digest, ""


def prepare_demo_userdir(
    userdir: Path,
    motor_port: int = DEMO_MOTOR_PORT,
    *,
    modules: Sequence[str] = DEMO_MODEL_MODULES,
) -> DemoPreparation:
    """Give a fresh demo runner the motor-anomaly flow, once.

    Only a userdir without flows.json is prepared: a flows.json that exists (the demo's own,
    or whatever the user deployed since, even an empty one) is the user's and is kept. The model
    goes in first, so the flow never references a model that is not there; if it cannot be
    generated, no flows.json is written and the runner starts empty (the next run tries again).
    """
    userdir.mkdir(parents=True, exist_ok=True)
    flows = userdir / FLOWS_FILE
    kept = f"demo runner: keeping {flows} (delete it to get the demo flow back)"
    if flows.exists():
        return DemoPreparation("kept", kept)
    digest, reason = generate_demo_model(userdir, modules)
    if digest is None:
        return DemoPreparation(
            "empty", f"demo runner: no demo flow, {reason}; starting the runner with no flows"
        )
    data = (json.dumps(demo_flow(motor_port, digest), indent=4) + "\n").encode()
    if not write_new_file(flows, data):
        return DemoPreparation("kept", kept)
    return DemoPreparation(
        "prepared",
        f"demo runner: wrote the motor-anomaly flow (motor on 127.0.0.1:{motor_port}, "
        f"model {digest[:12]}) to {flows}",
    )


def demo_token_file(var_dir: Path) -> Path:
    """Where ``manage.py demo_device`` leaves the demo runner's one-use registration token."""
    return var_dir / "demo-device-token"


def demo_children(
    var_dir: Path,
    runner_port: int = DEMO_RUNNER_PORT,
    motor_port: int = DEMO_MOTOR_PORT,
    platform_url: str = "http://127.0.0.1:8000",
) -> list[Child]:
    """The demo edge runner (user directory var/demo-runner; a managed device of the demo team
    once registered, see config/demo_runner.py) and the simulated motor its flow polls; none
    until the runner package has a CLI."""
    if not runner_available():
        return []
    userdir = demo_userdir(var_dir)
    userdir.mkdir(parents=True, exist_ok=True)
    return [
        Child("motor", python_module("examples.motor_sim", "--port", str(motor_port))),
        Child(
            "runner",
            python_module(
                "config.demo_runner",
                "--url",
                platform_url,
                "--data-dir",
                str(userdir),
                "--token-file",
                str(demo_token_file(var_dir)),
                "--port",
                str(runner_port),
                "--status-port",
                str(runner_port - 1),
            ),
        ),
    ]


def prepare_demo_device(var_dir: Path) -> str:
    """Snapshot the demo runner's flows on the platform and, for a runner not registered yet,
    issue its registration token (``manage.py demo_device``); returns what to tell the user."""
    userdir = demo_userdir(var_dir)
    flows = userdir / FLOWS_FILE
    if not flows.exists():
        return "demo device: no flows to snapshot; the runner runs standalone"
    command = [
        sys.executable,
        "manage.py",
        "demo_device",
        "--flows",
        str(flows),
        "--token-file",
        str(demo_token_file(var_dir)),
        "--models",
        str(userdir / "models"),
    ]
    if (userdir / "device" / "identity.json").exists():
        command.append("--registered")
    done = subprocess.run(  # our interpreter, our command
        command, cwd=BASE_DIR, capture_output=True, text=True, timeout=120, check=False
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if done.returncode != 0:
        return f"demo device: not prepared ({lines[-1] if lines else done.returncode})"
    return lines[-1] if lines else "demo device: prepared"


def demo_login(var_dir: Path) -> str | None:
    """``seed_demo``'s login (password, then email, in ``demo-login.txt``), or None."""
    try:
        lines = [line.strip() for line in (var_dir / "demo-login.txt").read_text().splitlines()]
    except FileNotFoundError:
        return None
    if len(lines) < 2 or not lines[0] or not lines[1]:
        return None
    return f"Log in as {lines[1]} with password {lines[0]}"


def framed(lines: Sequence[str]) -> str:
    """Lines in a box, so the one thing a newcomer needs stands out from the worker banners."""
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


def wait_until_serving(url: str, timeout: float, stop: threading.Event) -> bool:
    """Poll ``url`` until it answers (any HTTP status), ``timeout`` passes or ``stop`` is set."""
    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310  # our own http:// URL
                return True
        except urllib.error.HTTPError:
            return True
        except (urllib.error.URLError, OSError):
            stop.wait(0.3)
    return False


def var_dir_of(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("MANIFOLD_VAR_DIR", BASE_DIR / "var"))


def default_children(
    host: str,
    port: int,
    *,
    beat: bool = True,
    runner: bool = True,
    var_dir: Path | None = None,
    runner_port: int = DEMO_RUNNER_PORT,
    motor_port: int = DEMO_MOTOR_PORT,
) -> list[Child]:
    """The processes of a development platform."""
    var_dir = var_dir or var_dir_of()
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
                "--ws",
                WS_OPTION,
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
    children.append(
        Child(
            "hosted",
            [
                sys.executable,
                "manage.py",
                "hosted_runners",
                "--platform-url",
                hosted_platform_url(host, port),
            ],
        )
    )
    if runner:
        children.extend(
            demo_children(var_dir, runner_port, motor_port, hosted_platform_url(host, port))
        )
    return children


def hosted_platform_url(host: str, port: int, environ: Mapping[str, str] = os.environ) -> str:
    """Where hosted runners register and link: $MANIFOLD_HOSTED_PLATFORM_URL, else this server
    (on loopback when it listens on every address)."""
    configured = environ.get("MANIFOLD_HOSTED_PLATFORM_URL")
    if configured:
        return configured
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104  # a comparison
    return f"http://{reachable}:{port}"


class Supervisor:
    """Start children, relay their output with a name prefix, stop all when one stops."""

    def __init__(self, children: Sequence[Child], out: IO[str] | None = None) -> None:
        self.children = list(children)
        self.out = out or sys.stdout
        self._print_lock = threading.Lock()
        self._stop = threading.Event()
        self._width = max((len(child.name) for child in self.children), default=4)
        self._last_output = time.monotonic()

    def say(self, name: str, line: str) -> None:
        with self._print_lock:
            self.out.write(f"{name.ljust(self._width)} | {line}\n")
            self.out.flush()
            self._last_output = time.monotonic()

    def announce_when_ready(
        self, url: str, lines: Sequence[str], timeout: float = 120.0, quiet: float = 1.5
    ) -> None:
        """Once ``url`` answers and the children's start-up banners have settled (``quiet``
        seconds without output, at most 10 s more), print ``lines`` framed: last, not buried."""
        if not wait_until_serving(url, timeout, self._stop):
            return
        settle_until = time.monotonic() + 10
        while not self._stop.is_set() and time.monotonic() < settle_until:
            if time.monotonic() - self._last_output >= quiet:
                break
            self._stop.wait(0.2)
        if self._stop.is_set():
            return
        with self._print_lock:
            self.out.write("\n" + framed(lines) + "\n\n")
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

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

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
    parser = argparse.ArgumentParser(
        description=" ".join(__doc__.split("\n\n")[0].split()) if __doc__ else None
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-beat", action="store_true", help="do not start Celery beat")
    parser.add_argument(
        "--no-runner", action="store_true", help="start neither the demo runner nor the motor"
    )
    parser.add_argument("--runner-port", type=int, default=DEMO_RUNNER_PORT)
    parser.add_argument(
        "--motor-port",
        type=int,
        default=DEMO_MOTOR_PORT,
        help="simulated motor (Modbus TCP); a fresh demo flow polls this port",
    )
    options = parser.parse_args(argv)
    for flag, value in (
        ("--runner-port", options.runner_port),
        ("--motor-port", options.motor_port),
    ):
        if not 0 < value < 65536:
            parser.error(f"{flag} must be 1-65535, got {value}")
    var_dir = var_dir_of()
    supervisor = Supervisor(
        default_children(
            options.host,
            options.port,
            beat=not options.no_beat,
            runner=not options.no_runner,
            var_dir=var_dir,
            runner_port=options.runner_port,
            motor_port=options.motor_port,
        )
    )
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    if not options.no_runner and runner_available():
        supervisor.say("run", "demo runner: preparing its user directory")
        preparation = prepare_demo_userdir(demo_userdir(var_dir), options.motor_port)
        supervisor.say("run", preparation.message)
        supervisor.say("run", prepare_demo_device(var_dir))
        if supervisor.stop_requested:  # Ctrl-C while the model was being trained
            supervisor.say("run", "stopped before starting anything")
            return 0
    supervisor.start()
    base_url = f"http://{options.host}:{options.port}/"
    banner = [f"Manifold is ready: {base_url}"]
    login = demo_login(var_dir)
    if login:
        banner.append(login)
    if any(child.name == "runner" for child in supervisor.children):
        banner.append(
            f"Demo device 'motor-3 edge': {base_url}teams/acme/devices/ "
            f"(its status page: http://127.0.0.1:{options.runner_port - 1}/; "
            f"motor on 127.0.0.1:{options.motor_port}, Modbus TCP)"
        )
    banner.append("Ctrl-C stops everything.")
    threading.Thread(
        target=supervisor.announce_when_ready, args=(base_url + "healthz", banner), daemon=True
    ).start()
    return supervisor.wait()


if __name__ == "__main__":
    sys.exit(main())
