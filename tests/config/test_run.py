"""The `make run` supervisor as a real process tree: serves, relays output, stops everything;
prepares the demo runner once and runs it with the simulated motor."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from config.run import (
    DEMO_FLOW,
    DemoPreparation,
    Supervisor,
    demo_children,
    demo_login,
    framed,
    prepare_demo_userdir,
    write_new_file,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Running:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, seconds: float) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r}; got:\n" + "\n".join(self.lines))

    def pids(self) -> dict[str, int]:
        found = (re.search(r"started (\w+) \(pid (\d+)\)", line) for line in list(self.lines))
        return {match[1]: int(match[2]) for match in found if match}

    def healthy(self, seconds: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            try:
                with urllib.request.urlopen(  # fixed loopback URL
                    f"http://127.0.0.1:{self.port}/healthz", timeout=2
                ) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the web server never answered /healthz")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; only the supervisor could reap it.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


@contextlib.contextmanager
def started_platform(var_dir: Path, *extra_env: tuple[str, str]) -> Iterator[Running]:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "MANIFOLD_VAR_DIR": str(var_dir),
        **dict(extra_env),
    }
    env.pop("MANIFOLD_DEBUG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "config.run", "--port", str(port), "--no-runner"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = Running(process, port)
    try:
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in running.pids().values():
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Running]:
    with started_platform(tmp_path) as running:
        yield running


def test_make_run_frames_the_demo_login_last_and_shows_its_own_404(tmp_path: Path) -> None:
    (tmp_path / "demo-login.txt").write_text("demo-secret-1\nowner@acme.example\n")
    with started_platform(tmp_path) as running:
        running.healthy(90)
        running.wait_for_line(r"^\| Log in as owner@acme\.example with password demo-secret-1 ", 60)
        framed_at = max(
            index for index, line in enumerate(running.lines) if "Log in as owner@" in line
        )
        closing = next(
            index
            for index in range(framed_at, len(running.lines))
            if running.lines[index].startswith("+")
        )
        assert re.fullmatch(r"\+-+\+", running.lines[closing])
        assert all(line.startswith("| ") for line in running.lines[framed_at:closing])
        assert any("started web" in line for line in running.lines[:framed_at])
        after = len(running.lines) - framed_at - 1
        print(f"lines before the framed login: {framed_at}, after it: {after}")
        request = urllib.request.Request(f"http://127.0.0.1:{running.port}/no-such-page/")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310  # fixed loopback URL
        page = missing.value.read().decode()
        assert missing.value.code == 404
        assert "Page not found" in page
        assert "URLconf" not in page, "Django's debug page lists the URL patterns"


def test_serves_then_stops_every_child_on_sigterm(platform: Running) -> None:
    took = platform.healthy(60)
    print(f"supervisor start -> /healthz 200 in {took:.1f} s")
    platform.wait_for_line(r"^worker \| .*ready", 60)
    platform.wait_for_line(r"^beat   \| .*beat: Starting", 60)
    children = platform.pids()
    assert set(children) == {"web", "worker", "beat", "hosted"}
    stop_started = time.monotonic()
    platform.process.send_signal(signal.SIGTERM)
    assert platform.process.wait(30) == 0
    print(f"SIGTERM -> all stopped in {time.monotonic() - stop_started:.1f} s")
    assert [name for name, pid in children.items() if alive(pid)] == []
    assert any(line.startswith("run    | all stopped") for line in platform.lines)


def test_one_child_dying_stops_the_rest_and_fails(platform: Running) -> None:
    platform.healthy(60)
    children = platform.pids()
    os.killpg(children["worker"], signal.SIGKILL)
    assert platform.process.wait(30) == 1
    platform.wait_for_line(r"worker exited with code -9; stopping the others", 5)
    assert not alive(children["web"])
    assert not alive(children["beat"])


# --- The demo runner: prepared once from examples/, then run with the simulated motor. ---


@pytest.fixture(scope="module")
def prepared_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, DemoPreparation]:
    """One real preparation (training the model takes seconds) shared by the tests below."""
    userdir = tmp_path_factory.mktemp("var") / "demo-runner"
    motor_port = free_port()
    return userdir, motor_port, prepare_demo_userdir(userdir, motor_port)


def test_preparation_writes_the_demo_flow_and_its_model_once(
    prepared_demo: tuple[Path, int, DemoPreparation],
) -> None:
    userdir, motor_port, first = prepared_demo
    assert first.outcome == "prepared", first.message
    assert first.message.startswith("demo runner: wrote the motor-anomaly flow")
    flows = json.loads((userdir / "flows.json").read_text())
    by_type = {node["type"]: node for node in flows}
    assert by_type["modbus-client"]["tcpPort"] == motor_port
    assert by_type["modbus-client"]["tcpHost"] == "127.0.0.1"
    digest = by_type["onnx-infer"]["model"]
    model = userdir / "models" / f"{digest}.onnx"
    assert model.is_file()
    shipped = json.loads(DEMO_FLOW.read_text())
    assert [node["id"] for node in flows] == [node["id"] for node in shipped]
    before = ((userdir / "flows.json").read_bytes(), model.stat().st_mtime_ns)
    again = prepare_demo_userdir(userdir, motor_port)
    assert again.outcome == "kept"
    assert again.message.startswith(f"demo runner: keeping {userdir / 'flows.json'} (delete it")
    assert ((userdir / "flows.json").read_bytes(), model.stat().st_mtime_ns) == before
    assert sorted(p.name for p in (userdir / "models").iterdir()) == [model.name]


@pytest.mark.parametrize("content", [b"[]", b'[{"id": "mine", "type": "tab"}]\n', b"not json"])
def test_preparation_keeps_a_flows_file_the_user_has(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "flows.json").write_bytes(content)
    result = prepare_demo_userdir(tmp_path, free_port())
    assert result.outcome == "kept"
    assert (tmp_path / "flows.json").read_bytes() == content
    assert not (tmp_path / "models").exists(), "kept a flow but still trained a model"


def test_preparation_without_the_demo_extra_says_so_and_writes_nothing(tmp_path: Path) -> None:
    result = prepare_demo_userdir(
        tmp_path / "demo-runner", free_port(), modules=("sklearn", "manifold_no_such_module")
    )
    assert result.outcome == "empty"
    assert "\n" not in result.message
    assert result.message.startswith("demo runner: no demo flow, the model generator needs ")
    assert "manifold_no_such_module" in result.message
    assert "install -e '.[demo]'" in result.message
    assert result.message.endswith("starting the runner with no flows")
    assert sorted((tmp_path / "demo-runner").iterdir()) == []


def test_preparation_reports_a_failing_generator_in_one_line(tmp_path: Path) -> None:
    # The model store's directory is taken by a file: the real generator fails in the child.
    (tmp_path / "models").write_text("in the way")
    result = prepare_demo_userdir(tmp_path, free_port())
    assert result.outcome == "empty"
    assert "\n" not in result.message
    assert result.message.startswith("demo runner: no demo flow, the model generator failed: ")
    assert "models" in result.message
    assert not (tmp_path / "flows.json").exists()
    # Nothing stored was touched, and the next run tries again once the obstacle is gone.
    assert (tmp_path / "models").read_text() == "in the way"


def test_a_flows_file_that_appears_meanwhile_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "flows.json"
    assert write_new_file(target, b"[1]")
    assert not write_new_file(target, b"[2]")
    assert target.read_bytes() == b"[1]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.json"], "temp file left behind"


async def comms_status(runner_port: int, node_id: str, fill: str, seconds: float) -> float:
    """Subscribe to the runner's /comms and wait for ``status/<node_id>`` with ``fill``."""
    started = time.monotonic()
    deadline = started + seconds
    seen: list[object] = []
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                ws = await session.ws_connect(f"http://127.0.0.1:{runner_port}/comms")
                break
            except aiohttp.ClientError:
                assert time.monotonic() < deadline, "the demo runner never served /comms"
                await asyncio.sleep(0.2)
        async with ws:
            await ws.send_json({"subscribe": f"status/{node_id}"})
            while (left := deadline - time.monotonic()) > 0:
                try:
                    frame = await ws.receive_json(timeout=left)
                except TimeoutError:
                    break
                for item in frame:
                    seen.append(item["data"])
                    if item["topic"] == f"status/{node_id}" and item["data"].get("fill") == fill:
                        return time.monotonic() - started
    raise AssertionError(f"no {fill} status for {node_id} within {seconds} s; saw {seen}")


def wait_for_historian_rows(history: Path, seconds: float) -> int:
    """Poll the historian's SQLite file until it holds a row; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if history.exists():
            with contextlib.closing(sqlite3.connect(history, timeout=5)) as db:
                try:
                    (values,) = db.execute("SELECT count(*) FROM historian").fetchone()
                except sqlite3.OperationalError:  # the table is not created yet
                    values = 0
            if values:
                return int(values)
        time.sleep(0.2)
    raise AssertionError(f"modbus-read was green but no value reached the historian in {seconds} s")


def test_demo_runner_and_motor_children_run_the_prepared_flow(
    prepared_demo: tuple[Path, int, DemoPreparation],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, motor_port, preparation = prepared_demo
    assert preparation.outcome == "prepared", preparation.message
    shutil.copytree(source, tmp_path / "demo-runner")
    for name in [name for name in os.environ if name.startswith("MANIFOLD_RUNNER_")]:
        monkeypatch.delenv(name)
    runner_port = free_port()
    children = demo_children(tmp_path, runner_port, motor_port)
    assert [child.name for child in children] == ["motor", "runner"]
    out = io.StringIO()
    supervisor = Supervisor(children, out=out)
    supervisor.start()
    try:
        took = asyncio.run(comms_status(runner_port, "poll-motor", "green", 60))
        print(f"\ndemo children start -> modbus-read green on /comms in {took:.1f} s")
        with urllib.request.urlopen(  # fixed loopback URL
            f"http://127.0.0.1:{runner_port}/flows", timeout=5
        ) as response:
            served = json.loads(response.read())
        nodes = served["flows"] if isinstance(served, dict) else served
        assert "poll-motor" in {node["id"] for node in nodes}
        assert all(supervisor.process_of(child).poll() is None for child in children)
        # Green means connected, which can come before the first read: wait for a flushed value.
        history = tmp_path / "demo-runner" / "historian" / "motor.sqlite3"
        values = wait_for_historian_rows(history, 30)
        print(f"{values} value(s) in the historian")
    finally:
        stop_started = time.monotonic()
        supervisor.stop_all()
        print(f"demo children stopped in {time.monotonic() - stop_started:.1f} s")
    assert all(supervisor.process_of(child).poll() is not None for child in children)
    lines = out.getvalue().splitlines()
    assert any(line.startswith("motor  | ready ") for line in lines), lines
    assert any(line.startswith("runner | ") and "edge runner on" in line for line in lines), lines


def test_demo_login_reads_seed_demos_file_and_frames_it(tmp_path: Path) -> None:
    assert demo_login(tmp_path) is None
    (tmp_path / "demo-login.txt").write_text("only-a-password-from-an-older-seed\n")
    assert demo_login(tmp_path) is None
    (tmp_path / "demo-login.txt").write_text("pw-1\nowner@acme.example\n")
    line = demo_login(tmp_path)
    assert line == "Log in as owner@acme.example with password pw-1"
    box = framed(["Manifold is ready: http://127.0.0.1:8000/", line]).splitlines()
    width = len("Log in as owner@acme.example with password pw-1") + 4
    assert box[0] == box[-1] == "+" + "-" * (width - 2) + "+"
    assert {len(row) for row in box} == {width}
