"""The deploy path under real kills and hostile node code (RELIABILITY.md families 34 and 35),
against ``python -m edge_runner serve`` as a subprocess.

* Family 34: SIGKILL 0-300 ms into a deploy that changes flows and credentials; after the
  restart the flows and the credentials on disk (and served) belong to the same generation.
* Family 35: ``sys.exit`` / ``raise SystemExit`` / ``KeyboardInterrupt`` in a python-function
  (per message, sync and async, and in ``initialize``): the deploy is answered and the runner
  stays up. ``os._exit`` while starting kills the process: the restart is in safe mode (flows
  loaded, not started, the reason on ``GET /flows/state`` and /comms) and a good deploy from
  there runs normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_runner.runtime.credentials import decrypt
from tests.edge_runner.test_server import V2, frames, free_port, start_cli, wait_ready

SECRET = "cli-secret"  # start_cli's EDGE_RUNNER_CREDENTIAL_SECRET


class Cli:
    """One runner process on a fixed port and userdir, restartable."""

    def __init__(self, userdir: Path, client: aiohttp.ClientSession) -> None:
        self.userdir = userdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.client = client
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> float:
        self.proc = start_cli(self.userdir, self.port)
        return await wait_ready(self.client, self.port, self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def deploy(self, flows: list[Any]) -> tuple[int, dict[str, Any]]:
        async with self.client.post(f"{self.base}/flows", json={"flows": flows}, headers=V2) as r:
            return r.status, await r.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.client.get(self.base + path, headers=V2) as r:
            text = await r.text()
            return r.status, json.loads(text) if "json" in r.content_type else text


@pytest.fixture
async def cli(tmp_path: Path) -> AsyncIterator[Cli]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        runner = Cli(tmp_path / "ud", client)
        try:
            yield runner
        finally:
            runner.kill()


# ---------------------------------------------------------------------------- family 34


def generation(number: int) -> list[dict[str, Any]]:
    """Flows of generation ``number``: its tab label, a probe route and an http request node
    whose password is ``P<number>``."""
    return [
        {"id": "t1", "type": "tab", "label": f"gen-{number}"},
        {
            "id": "req",
            "type": "http request",
            "z": "t1",
            "method": "GET",
            "url": "http://127.0.0.1:9/",
            "authType": "basic",
            "wires": [],
            "credentials": {"user": f"user-{number}", "password": f"P{number}"},
        },
        {
            "id": "pin",
            "type": "http in",
            "z": "t1",
            "url": f"/probe/gen-{number}",
            "method": "get",
            "wires": [["pout"]],
        },
        {"id": "pout", "type": "http response", "z": "t1", "wires": []},
    ]


def stored_generation(userdir: Path) -> tuple[int, int]:
    """(generation of flows.json, generation of the password in flows_cred.json)."""
    flows = json.loads((userdir / "flows.json").read_bytes())
    (tab,) = [n for n in flows if n["type"] == "tab"]
    assert "credentials" not in json.dumps(flows)
    creds = decrypt(SECRET, json.loads((userdir / "flows_cred.json").read_bytes()))
    return int(tab["label"].removeprefix("gen-")), int(creds["req"]["password"][1:])


async def kill_rounds(cli: Cli, rounds: int) -> None:
    seed = int(time.time())
    rng = random.Random(seed)
    await cli.start()
    status, _ = await cli.deploy(generation(0))
    assert status == 200
    current = 0
    outcomes = {"old": 0, "new": 0, "safe": 0}
    restarts: list[float] = []
    t0 = time.perf_counter()
    for number in range(1, rounds + 1):
        delay = rng.uniform(0, 0.3)
        deploy = asyncio.create_task(cli.deploy(generation(number)))
        await asyncio.sleep(delay)
        cli.kill()
        with contextlib.suppress(TimeoutError, aiohttp.ClientError):
            await deploy
        restarts.append(await cli.start())
        flows_gen, creds_gen = stored_generation(cli.userdir)
        where = f"round {number} (seed {seed}, kill at {delay * 1000:.0f} ms)"
        assert flows_gen == creds_gen, where
        assert flows_gen in (current, number)
        outcomes["new" if flows_gen == number else "old"] += 1
        current = flows_gen
        # The runner serves what it stored: running it, or in safe mode (killed while starting).
        _, state = await cli.get("/flows/state")
        if state["state"] == "safe":
            outcomes["safe"] += 1
        else:
            assert (await cli.get(f"/probe/gen-{current}"))[0] == 200
        leftovers = [p.name for p in cli.userdir.iterdir() if p.name.endswith(".tmp")]
        assert leftovers == []
        assert not (cli.userdir / ".deploy.json").exists()
    elapsed = time.perf_counter() - t0
    restarts.sort()
    print(
        f"{rounds} kill rounds in {elapsed:.1f} s (seed {seed}): {outcomes}; restart to ready "
        f"median {restarts[len(restarts) // 2] * 1000:.0f} ms, max {restarts[-1] * 1000:.0f} ms"
    )


@pytest.mark.slow
async def test_kill_during_deploy_keeps_flows_and_credentials_together(cli: Cli) -> None:
    await kill_rounds(cli, 30)


@pytest.mark.soak
async def test_kill_during_deploy_soak_100_rounds(cli: Cli) -> None:
    await kill_rounds(cli, 100)


# ---------------------------------------------------------------------------- family 35


def function_flow(tag: str, func: str = "return msg", initialize: str = "") -> list[dict[str, Any]]:
    """http in GET /probe/<tag> -> python-function -> http response."""
    return [
        {"id": "t1", "type": "tab", "label": tag},
        {
            "id": "pin",
            "type": "http in",
            "z": "t1",
            "url": f"/probe/{tag}",
            "method": "get",
            "wires": [["fn"]],
        },
        {
            "id": "fn",
            "type": "python-function",
            "z": "t1",
            "func": func,
            "initialize": initialize,
            "wires": [["pout"]],
        },
        {"id": "pout", "type": "http response", "z": "t1", "wires": []},
        {"id": "ctch", "type": "catch", "z": "t1", "scope": None, "wires": [["why"]]},
        {
            "id": "why",
            "type": "change",
            "z": "t1",
            "rules": [
                {"t": "set", "p": "payload", "pt": "msg", "to": "error.message", "tot": "msg"}
            ],
            "wires": [["pout"]],
        },
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "raised"),
    [
        ("import sys\nsys.exit(3)", "SystemExit: 3"),
        ("raise SystemExit", "SystemExit"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("import sys, asyncio\nawait asyncio.sleep(0)\nsys.exit(4)", "SystemExit: 4"),
    ],
)
async def test_exit_in_a_function_body_fails_the_message_not_the_runner(
    cli: Cli, body: str, raised: str
) -> None:
    await cli.start()
    status, _ = await cli.deploy(function_flow("exit", body))
    assert status == 200
    for _ in range(3):
        # the catch node answers the request with the error message (handled, so not logged)
        async with cli.client.get(f"{cli.base}/probe/exit") as r:
            assert r.status == 200
            assert raised in await r.text()
    assert cli.alive()
    assert (await cli.get("/flows/state")) == (200, {"state": "start"})


@pytest.mark.slow
async def test_system_exit_in_initialize_is_answered_as_a_start_failure(cli: Cli) -> None:
    await cli.start()
    status, body = await cli.deploy(function_flow("init", initialize="raise SystemExit(9)"))
    assert status == 200
    (failure,) = body["failures"]
    assert failure["id"] == "fn"
    assert "SystemExit: 9" in failure["error"]
    assert cli.alive()
    # the node is red and receives nothing; the rest of the flow runs
    status, good = await cli.deploy(function_flow("good"))
    assert (status, "failures" in good) == (200, False)
    assert (await cli.get("/probe/good"))[0] == 200


@pytest.mark.slow
async def test_os_exit_while_starting_restarts_in_safe_mode_until_a_deploy(cli: Cli) -> None:
    await cli.start()
    hostile = function_flow("hostile", initialize="import os\nos._exit(7)")
    with pytest.raises(aiohttp.ClientError):
        await cli.deploy(hostile)
    assert cli.proc is not None
    assert await asyncio.to_thread(cli.proc.wait, 10) == 7
    await cli.start()
    status, state = await cli.get("/flows/state")
    assert status == 200
    assert (state["state"], state["error"]) == ("safe", "safe-mode")
    assert "safe mode" in state["text"]
    _, stored = await cli.get("/flows")
    assert [n["id"] for n in stored["flows"]] == [n["id"] for n in hostile]
    assert (await cli.get("/probe/hostile"))[0] == 404  # loaded, not started
    async with cli.client.ws_connect(f"{cli.base}/comms") as ws:
        await ws.send_json({"subscribe": "notification/#"})
        (item,) = await frames(ws, 1, "notification/runtime-state")
    assert item["data"] == state
    # a restart does not leave safe mode by itself: the hostile flows never run unasked
    cli.kill()
    await cli.start()
    assert (await cli.get("/flows/state"))[1]["state"] == "safe"
    status, _ = await cli.deploy(function_flow("fixed"))
    assert status == 200
    assert (await cli.get("/flows/state")) == (200, {"state": "start"})
    assert (await cli.get("/probe/fixed"))[0] == 200
    cli.kill()
    await cli.start()
    assert (await cli.get("/probe/fixed"))[0] == 200
