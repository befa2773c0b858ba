"""``edge-runner register`` and ``edge-runner run`` as real processes.

Registration talks to ``PlatformDouble``, an in-test aiohttp server standing in for the
platform; end-to-end registration with the real platform is tested under tests/apps/devices.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys

import pytest

from edge_runner.agent.cli import UsageError, memory_limit
from edge_runner.agent.identity import Identity, credential_file, identity_file
from edge_runner.runtime.paths import RunnerPaths
from tests.edge_runner.agent.platform_double import TOKEN, PlatformDouble


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
    assert stat.S_IMODE(identity_file(paths).stat().st_mode) == 0o600
    assert stat.S_IMODE(credential_file(paths).stat().st_mode) == 0o600
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
        "register", "--url", platform.url, "--token", "mfp_nope", "--data-dir", str(paths.root)
    )
    assert code == 1
    assert err.startswith("edge-runner register: the platform refused the token")
    assert not identity_file(paths).exists()


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
