"""The supervised engine child (device-protocol.md, "Supervision"; RELIABILITY.md family 35):
an exiting engine is restarted with backoff, a wedged one (node code looping in
``try/except BaseException``) is killed after 3 missed polls and restarted, an engine ignoring
SIGTERM is killed on stop, and the child runs with its memory rlimit and a lowered priority.
Every case is a real ``python -m edge_runner serve`` process deployed through its Admin API."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from edge_runner.agent.engine_client import EngineClient, EngineError
from edge_runner.agent.supervisor import NICE, Supervisor
from edge_runner.runtime.paths import RunnerPaths
from tests.edge_runner.agent.test_apply import gen_flow, later, write_credential
from tests.edge_runner.test_server import free_port

WEDGE = (
    "import time\n"
    "while True:\n"
    "    try:\n"
    "        time.sleep(0.01)\n"
    "    except BaseException:\n"
    "        pass\n"
)


async def started(tmp_path: Path, **options: Any) -> tuple[Supervisor, list[str]]:
    paths = RunnerPaths(tmp_path / "root")
    crashes: list[str] = []
    supervisor = Supervisor(
        paths, free_port(), write_credential(paths), on_crash=crashes.append, **options
    )
    await supervisor.start()
    return supervisor, crashes


async def until(condition: object, within: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < within:
        if callable(condition) and condition():
            return time.perf_counter() - t0
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_an_exiting_engine_is_restarted_and_counted(tmp_path: Path) -> None:
    supervisor, crashes = await started(tmp_path, poll_seconds=0.5)
    try:
        client = supervisor.client()
        assert (await client.state())["state"] == "start"
        first = supervisor.pid
        assert first is not None
        os.killpg(first, signal.SIGKILL)
        took = await until(lambda: supervisor.restarts == 1 and supervisor.ready.is_set(), 30)
        print(f"\nengine SIGKILLed: answering again after {took:.2f} s")
        assert supervisor.pid != first
        assert crashes == ["the engine exited with code -9"]
        when, reason = supervisor.restart_log[0]
        assert reason == crashes[0]
        assert abs(when - time.time()) < 60
        assert (await client.state())["state"] == "start"
    finally:
        await supervisor.stop()
    assert supervisor.process is not None
    assert supervisor.process.returncode is not None


async def test_a_wedged_engine_is_killed_after_three_missed_polls(tmp_path: Path) -> None:
    supervisor, crashes = await started(tmp_path, poll_seconds=0.5)
    try:
        client = supervisor.client()
        result = await client.deploy(gen_flow(1, later(WEDGE, 0.2)), {})
        assert result["status"] == "accepted"
        wedged = supervisor.pid
        await asyncio.sleep(0.5)
        with pytest.raises((EngineError, TimeoutError)):
            await asyncio.wait_for(client.state(), 0.5)
        took = await until(lambda: supervisor.restarts >= 1, 30)
        print(f"\nwedged engine (loop in try/except BaseException): killed after {took:.2f} s")
        assert "did not answer for 3 polls" in crashes[0]
        await until(lambda: supervisor.pid != wedged, 30)
        # the restarted engine boots the same flows and wedges again: it keeps being replaced
        await until(lambda: supervisor.restarts >= 2, 30)
    finally:
        t0 = time.perf_counter()
        await supervisor.stop()
        print(f"stop of a wedged engine: {time.perf_counter() - t0:.2f} s")


async def test_an_engine_ignoring_sigterm_is_killed_on_stop(tmp_path: Path) -> None:
    supervisor, _ = await started(tmp_path, stop_seconds=1.0)
    client = supervisor.client()
    ignore = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nreturn msg"
    assert (await client.deploy(gen_flow(1, later(ignore, 0.05)), {}))["status"] == "accepted"
    await asyncio.sleep(0.5)
    process = supervisor.process
    assert process is not None
    t0 = time.perf_counter()
    await supervisor.stop()
    print(f"\nengine ignoring SIGTERM stopped in {time.perf_counter() - t0:.2f} s")
    assert process.returncode == -signal.SIGKILL


async def test_the_engine_runs_with_a_memory_limit_and_a_lower_priority(tmp_path: Path) -> None:
    limit = 1536 * 1024 * 1024
    supervisor, crashes = await started(tmp_path, memory_limit_bytes=limit)
    try:
        pid = supervisor.pid
        assert pid is not None
        limits = await asyncio.to_thread(Path(f"/proc/{pid}/limits").read_text)
        data_line = next(line for line in limits.splitlines() if line.startswith("Max data size"))
        assert data_line.split()[3:5] == [str(limit), str(limit)]
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(
            19, os.getpriority(os.PRIO_PROCESS, 0) + NICE
        )
        assert os.getpgid(pid) == pid  # its own process group: killed as a whole
        hog = "blob = bytearray(4 * 1024 ** 3)\nmsg['payload'] = len(blob)\nreturn msg"
        client = supervisor.client()
        assert (await client.deploy(gen_flow(1, later(hog, 0.05)), {}))["status"] == "accepted"
        await asyncio.sleep(1.0)
        assert (await client.state())["state"] == "start"
        assert supervisor.restarts == 0
        assert crashes == []
    finally:
        await supervisor.stop()


async def test_developer_requests_reach_only_the_allowed_paths(tmp_path: Path) -> None:
    supervisor, _ = await started(tmp_path)
    try:
        client = supervisor.client()
        status, body = await client.request("GET", "/flows/state")
        assert (status, body["state"]) == (200, "start")
        status, body = await client.request("POST", "/flows", {"flows": gen_flow(1)})
        assert status == 200
        assert "rev" in body
        status, _ = await client.request("POST", "/inject/gin")
        assert status == 200
        for method, path in (
            ("DELETE", "/flows"),
            ("GET", "/comms"),
            ("GET", "/gen"),
            ("POST", "/flows/state"),
            ("GET", "/inject/gin"),
            ("POST", "/inject/../flows"),
        ):
            status, body = await client.request(method, path)
            assert (status, body["code"]) == (403, "not_allowed"), (method, path)
        unauthenticated = EngineClient(supervisor.base_url, None)
        try:
            with pytest.raises(EngineError, match="401"):
                await unauthenticated.state()
        finally:
            await unauthenticated.close()
    finally:
        await supervisor.stop()


async def test_comms_events_reach_a_subscriber(tmp_path: Path) -> None:
    supervisor, _ = await started(tmp_path)
    events: list[tuple[str, object]] = []
    client = supervisor.client()
    task = asyncio.get_running_loop().create_task(
        client.subscribe(lambda topic, data: events.append((topic, data)))
    )
    try:
        status_flow = (
            "node.status({'fill': 'red', 'shape': 'ring', 'text': 'broken'})\n"
            "node.error('boom')\nreturn msg"
        )
        await asyncio.sleep(0.3)
        assert (await client.deploy(gen_flow(1, later(status_flow, 0.2)), {}))[
            "status"
        ] == "accepted"
        await until(lambda: any(t == "status/lfn" for t, _ in events), 10)
        await until(lambda: any(t == "debug" for t, _ in events), 10)
    finally:
        task.cancel()
        await supervisor.stop()
