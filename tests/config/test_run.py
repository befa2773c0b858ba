"""The `make run` supervisor as a real process tree: serves, relays output, stops everything."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Running]:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "MANIFOLD_VAR_DIR": str(tmp_path),
    }
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


def test_serves_then_stops_every_child_on_sigterm(platform: Running) -> None:
    took = platform.healthy(60)
    print(f"supervisor start -> /healthz 200 in {took:.1f} s")
    platform.wait_for_line(r"^worker \| .*ready", 60)
    platform.wait_for_line(r"^beat   \| .*beat: Starting", 60)
    children = platform.pids()
    assert set(children) == {"web", "worker", "beat"}
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
