"""``edge-runner register`` and ``edge-runner run`` as real processes.

Registration talks to ``PlatformDouble``, an in-test aiohttp server standing in for the
platform; end-to-end registration with the real platform is tested under tests/apps/devices.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys

import aiohttp
import pytest

from edge_runner.agent.cli import UsageError, memory_limit
from edge_runner.agent.identity import Identity
from edge_runner.protocol import link
from edge_runner.runtime.paths import RunnerPaths
from tests.edge_runner.agent.platform_double import TOKEN, PlatformDouble, free_port

FLOWS = [
    {"id": "t1", "type": "tab", "label": "Line 1"},
    {
        "id": "i1",
        "type": "inject",
        "z": "t1",
        "props": [{"p": "payload"}],
        "repeat": "",
        "once": False,
        "topic": "",
        "payload": "hello from the device",
        "payloadType": "str",
        "wires": [["d1"]],
    },
    {
        "id": "d1",
        "type": "debug",
        "z": "t1",
        "active": True,
        "tosidebar": True,
        "complete": "payload",
        "targetType": "msg",
        "wires": [],
    },
]
SETTINGS = {"env": {}, "runner": {}, "health": {"timeout_seconds": 5}}


async def edge_runner(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_runner",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_register_then_refuse_a_second_registration_without_force(
    platform: PlatformDouble, paths: RunnerPaths
) -> None:
    data_dir = str(paths.root)
    code, out, err = await edge_runner(
        "register", "--url", platform.url, "--token", TOKEN, "--data-dir", data_dir, "--name", "p4"
    )
    assert code == 0, err
    assert "registered as device 12 (p4) of team 7" in out
    assert stat.S_IMODE(paths.identity.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.device_credential.stat().st_mode) == 0o600
    first = Identity.load(paths)

    code, out, err = await edge_runner(
        "register", "--url", platform.url, "--token", TOKEN, "--data-dir", data_dir
    )
    assert code == 1
    assert "already holds a device identity" in err
    assert "--force" in err
    assert Identity.load(paths) == first

    code, _, err = await edge_runner(
        "register", "--url", platform.url, "--data-dir", data_dir, "--force",
        env={"EDGE_RUNNER_REGISTRATION_TOKEN": TOKEN},
    )  # fmt: skip
    assert code == 0, err
    assert Identity.load(paths).sealing_private_key != first.sealing_private_key


async def test_register_with_a_bad_token_exits_1_with_the_reason(
    platform: PlatformDouble, paths: RunnerPaths
) -> None:
    code, _out, err = await edge_runner(
        "register", "--url", platform.url, "--token", "mft_nope", "--data-dir", str(paths.root)
    )
    assert code == 1
    assert err.startswith("edge-runner register: the platform refused the token")
    assert not paths.identity.exists()


async def test_register_without_a_token_is_a_usage_error(paths: RunnerPaths) -> None:
    env = {"EDGE_RUNNER_REGISTRATION_TOKEN": ""}
    code, _, err = await edge_runner(
        "register", "--url", "http://127.0.0.1:9", "--data-dir", str(paths.root), env=env
    )
    assert code == 2
    assert "--token is required" in err


async def test_run_without_registration_exits_2_and_says_how(paths: RunnerPaths) -> None:
    code, _, err = await edge_runner("run", "--data-dir", str(paths.root))
    assert code == 2
    assert "not registered" in err
    assert "edge-runner register" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-limit", "lots"], "--memory-limit must be a size"),
        (["--memory-limit", "1M"], "at least 64M"),
        (["--port", "0"], "--port must be 1-65535"),
        (["--port", "1880", "--status-port", "1880"], "must differ"),
    ],
)
async def test_run_usage_errors(paths: RunnerPaths, args: list[str], message: str) -> None:
    code, _, err = await edge_runner("run", "--data-dir", str(paths.root), *args)
    assert code == 2
    assert message in err


def test_memory_limit_sizes() -> None:
    assert memory_limit("512M") == 512 * 1024**2
    assert memory_limit("1G") == 1024**3
    assert memory_limit("1gib") == 1024**3
    assert memory_limit(str(128 * 1024**2)) == 128 * 1024**2
    assert memory_limit(None) is None
    assert memory_limit("none") is None
    with pytest.raises(UsageError):
        memory_limit("12 parsecs")


def has_debug(message: dict[str, object]) -> bool:
    items = message["items"]
    assert isinstance(items, list)
    return any(i["kind"] == "debug" and i.get("msg") == "hello from the device" for i in items)


@pytest.mark.slow
async def test_run_applies_a_target_streams_and_stops_on_sigterm(
    platform: PlatformDouble, paths: RunnerPaths
) -> None:
    """The whole agent as a process: engine child, boot, link, a real target applied by the
    real applier, the status page, developer mode, the stream, and SIGTERM -> exit 0."""
    await Identity.register(platform.url, TOKEN, paths)
    port, status_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_runner", "run", "--data-dir", str(paths.root),
        "--port", str(port), "--status-port", str(status_port), "--memory-limit", "1G",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await platform.connected(within=60)
        target = platform.sign_target(
            1,
            {
                "flows.json": json.dumps(FLOWS).encode(),
                "settings.json": json.dumps(SETTINGS).encode(),
            },
        )
        await platform.send({"type": link.TARGET, "target": target})
        result = await platform.wait_for(link.APPLY_RESULT, within=60)
        assert result["outcome"] == "applied", result
        assert result["active"]["generation"] == 1
        assert result["active"]["snapshot"] == "41"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{status_port}/status.json") as answer,
        ):
            status = await answer.json()
        assert status["link"] == "connected"
        assert status["active"]["generation"] == 1

        await platform.send({"type": link.WATCH, "on": True, "lease_seconds": 30, "since": 0})
        await platform.send(
            {"type": link.DEV_REQUEST, "request": "r1", "method": "POST", "path": "/inject/i1"}
        )
        answer_to_dev = await platform.wait_for(link.DEV_RESULT, within=30)
        assert answer_to_dev["status"] == 200, answer_to_dev
        await platform.wait_for(link.STREAM, has_debug, within=30)

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        with pytest.raises(ConnectionRefusedError):  # the engine went with the agent
            await asyncio.open_connection("127.0.0.1", port)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
