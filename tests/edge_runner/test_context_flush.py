"""The ``file`` context store against real kills of ``python -m edge_runner serve``: SIGTERM
flushes everything; SIGKILL loses only what was written within the last flush interval
(README, "Context stores")."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.edge_runner.test_server import free_port, start_cli, wait_ready

pytestmark = pytest.mark.slow


def route(node_id: str, method: str, url: str, rule: dict[str, Any]) -> list[dict[str, Any]]:
    """http in ``method url`` -> change (one rule) -> http response."""
    return [
        {
            "id": f"{node_id}-in",
            "type": "http in",
            "z": "t1",
            "method": method,
            "url": url,
            "wires": [[f"{node_id}-rule"]],
        },
        {
            "id": f"{node_id}-rule",
            "type": "change",
            "z": "t1",
            "rules": [rule],
            "wires": [[f"{node_id}-out"]],
        },
        {"id": f"{node_id}-out", "type": "http response", "z": "t1", "wires": []},
    ]


# POST /count {"v": N} stores N as global "#:(file)::count"; GET /count answers {"count": N}.
FLOWS = [
    {"id": "t1", "type": "tab"},
    *route(
        "set",
        "post",
        "/count",
        {"t": "set", "p": "#:(file)::count", "pt": "global", "to": "payload.v", "tot": "msg"},
    ),
    *route(
        "get",
        "get",
        "/count",
        {"t": "set", "p": "payload.count", "pt": "msg", "to": "#:(file)::count", "tot": "global"},
    ),
]


class Runner:
    """One ``edge_runner serve`` process on ``port`` with a given flush interval."""

    def __init__(self, client: aiohttp.ClientSession, data_dir: Path, port: int) -> None:
        self.client, self.data_dir, self.port = client, data_dir, port
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, flush_interval: float) -> None:
        self.proc = start_cli(
            self.data_dir, self.port, "--context-flush-interval", str(flush_interval)
        )
        await wait_ready(self.client, self.port, self.proc)

    def kill(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        return self.proc.wait(10)

    async def write(self, value: int) -> None:
        async with self.client.post(f"{self.base}/count", json={"v": value}) as r:
            assert r.status == 200, await r.text()

    async def read(self) -> Any:
        async with self.client.get(f"{self.base}/count") as r:
            assert r.status == 200, await r.text()
            return json.loads(await r.text()).get("count")

    def on_disk(self) -> Any:
        path = self.data_dir / "context" / "global.json"
        return json.loads(path.read_text()).get("count") if path.exists() else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGKILL)


@pytest.fixture
async def runner(tmp_path: Path) -> Any:
    async with aiohttp.ClientSession() as client:
        runner = Runner(client, tmp_path / "runner", free_port())
        try:
            yield runner
        finally:
            runner.stop()


async def deploy(runner: Runner, extra: list[dict[str, Any]] | None = None) -> None:
    async with runner.client.post(f"{runner.base}/flows", json=[*FLOWS, *(extra or [])]) as r:
        assert r.status == 204, await r.text()


async def test_sigterm_flushes_a_write_made_just_before(runner: Runner) -> None:
    await runner.start(flush_interval=30)
    await deploy(runner)
    await runner.write(7)
    assert runner.on_disk() is None  # still waiting for its 30 s flush
    assert runner.kill(signal.SIGTERM) == 0
    assert runner.on_disk() == 7
    await runner.start(flush_interval=30)
    assert await runner.read() == 7
    runner.kill(signal.SIGTERM)


async def test_sigterm_flushes_even_when_a_node_hangs_while_stopping(runner: Runner) -> None:
    """The server gives the engine a few seconds to stop; a node that hangs in its stop must
    not cost the context written before SIGTERM."""
    hanging = {
        "id": "hang",
        "type": "python-function",
        "z": "t1",
        "func": "return msg",
        "finalize": "import asyncio\nawait asyncio.sleep(60)",
        "wires": [],
    }
    await runner.start(flush_interval=30)
    await deploy(runner, [hanging])
    await runner.write(9)
    t0 = time.perf_counter()
    runner.kill(signal.SIGTERM)
    print(f"SIGTERM with a hanging node: exited after {time.perf_counter() - t0:.1f} s")
    assert runner.on_disk() == 9


async def test_sigkill_loses_only_writes_newer_than_the_flush_interval(runner: Runner) -> None:
    await runner.start(flush_interval=0.5)
    await deploy(runner)
    t0 = time.perf_counter()
    await runner.write(1)
    while runner.on_disk() != 1:
        assert time.perf_counter() - t0 < 10, "not flushed within 10 s"
        await asyncio.sleep(0.02)
    print(f"flush interval 0.5 s: on disk after {time.perf_counter() - t0:.2f} s")
    runner.kill(signal.SIGKILL)

    await runner.start(flush_interval=30)
    assert await runner.read() == 1  # written more than one interval before the kill: kept
    await runner.write(2)
    runner.kill(signal.SIGKILL)

    await runner.start(flush_interval=0)
    assert await runner.read() == 1  # written within the interval: lost, as documented
    await runner.write(3)
    runner.kill(signal.SIGKILL)

    await runner.start(flush_interval=1)
    assert await runner.read() == 3  # interval 0 writes at once: nothing to lose
    runner.kill(signal.SIGTERM)


def test_a_bad_flush_interval_is_refused_before_starting(tmp_path: Path) -> None:
    for bad in ("-1", "nan", "7200"):
        out = subprocess.run(
            [
                *(sys.executable, "-m", "edge_runner", "serve", "--data-dir", str(tmp_path)),
                *("--context-flush-interval", bad),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 2, out.stderr
        assert "--context-flush-interval must be 0-3600 seconds" in out.stderr
    assert list(tmp_path.iterdir()) == []
