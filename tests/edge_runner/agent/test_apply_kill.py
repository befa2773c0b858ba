"""The agent process killed with SIGKILL while it downloads, installs and applies targets
(RELIABILITY.md families 15 and 16), against real agent and engine processes.

Each round starts an agent process (this module run with ``python -m``) on the same data
directory; it boots (``Applier.boot``: offline, no platform), says so, then applies three new
generations. The test checks, after every boot, that ``agent.json`` names a completely
installed snapshot and that the engine runs exactly it (``GET /gen`` answers its generation),
then kills the agent: half of the rounds at a random instant, half at the N-th ``fsync`` /
``rename`` / ``replace`` of the install and state writes (every fault point of the install,
power-loss style: the process dies between two durable steps). The engine dies with the agent
(``PR_SET_PDEATHSIG``). 20 rounds in the normal suite, 100 under ``soak``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_runner.agent.store import SnapshotStore
from edge_runner.runtime.paths import RunnerPaths
from tests.edge_runner.agent.test_apply import bundle, download, start_device
from tests.edge_runner.agent.test_store import complete
from tests.edge_runner.test_server import free_port

GENERATIONS_PER_ROUND = 3
WORKTREE = Path(__file__).resolve().parents[3]


def arm_fault(after: int) -> None:
    """SIGKILL this process at the ``after``-th durable file system step."""
    counter = {"calls": 0}

    def wrap(original: Any) -> Any:
        def step(*args: Any, **kwargs: Any) -> Any:
            counter["calls"] += 1
            if counter["calls"] >= after:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        return step

    os.fsync = wrap(os.fsync)
    os.rename = wrap(os.rename)
    os.replace = wrap(os.replace)


async def agent_main(root: Path, port: int, first: int, fault: int) -> None:
    device = await start_device(root, port, start=False)
    outcome = await device.applier.boot()
    print(json.dumps({"booted": True, "boot": outcome and outcome.outcome}), flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the test has checked what runs
    if fault:
        arm_fault(fault)
    for generation in range(first, first + GENERATIONS_PER_ROUND):
        manifest, parts = bundle(generation)
        download(device.store, generation, parts)
        result = await device.applier.apply(manifest)
        print(json.dumps({"applied": generation, "outcome": result.outcome}), flush=True)
    await asyncio.sleep(3600)


class Rounds:
    def __init__(self, root: Path, http: aiohttp.ClientSession) -> None:
        self.root = root
        self.port = free_port()
        self.http = http
        self.next_generation = 1
        self.booted: list[float] = []
        self.verified = 0
        self.boot_outcomes: dict[str, int] = {}

    async def round(self, rng: random.Random) -> None:
        fault = rng.randint(1, 30) if rng.random() < 0.5 else 0
        log = await asyncio.to_thread(open, self.root.parent / "agent.log", "ab")
        with log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.edge_runner.agent.test_apply_kill",
                str(self.root),
                str(self.port),
                str(self.next_generation),
                str(fault),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=WORKTREE,
            )
        self.next_generation += GENERATIONS_PER_ROUND
        assert proc.stdout is not None
        assert proc.stdin is not None
        try:
            t0 = time.perf_counter()
            line = await asyncio.wait_for(proc.stdout.readline(), 90)
            assert line, f"agent exited with {await proc.wait()} before booting"
            self.booted.append(time.perf_counter() - t0)
            boot = json.loads(line)["boot"] or "none"
            self.boot_outcomes[boot] = self.boot_outcomes.get(boot, 0) + 1
            await self.verify()
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
            if not fault:
                await asyncio.sleep(rng.uniform(0, 4.0))
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await asyncio.wait_for(proc.wait(), 120)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def verify(self) -> None:
        store = SnapshotStore(RunnerPaths(self.root))
        active = store.state.active
        if active is None:
            assert store.state.last_good is None
            return
        assert store.is_installed(active), f"agent.json names generation {active}, not installed"
        assert complete(store, active), f"generation {active} is not complete"
        async with self.http.get(f"http://127.0.0.1:{self.port}/gen") as r:
            assert r.status == 200, await r.text()
            served = await r.json()
        assert served["generation"] == active
        assert served["secret"] == f"canary-{active}"
        self.verified += 1


async def run_rounds(tmp_path: Path, count: int) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    async with aiohttp.ClientSession() as http:
        rounds = Rounds(tmp_path / "root", http)
        for _ in range(count):
            await rounds.round(rng)
        await rounds.round(random.Random(0))  # a last boot after the last kill, checked
    booted = sorted(rounds.booted)
    print(
        f"\nfamily 16: {count} agent kills (half at fault points of install/state writes); "
        f"{rounds.verified}/{count + 1} boots verified running a complete snapshot "
        f"(the others had none yet); boot outcomes {rounds.boot_outcomes}; "
        f"boot to verified median {booted[len(booted) // 2]:.2f} s, max {booted[-1]:.2f} s"
    )
    assert rounds.verified >= count // 2


@pytest.mark.slow
async def test_agent_kills_during_install_leave_a_complete_running_snapshot(
    tmp_path: Path,
) -> None:
    await run_rounds(tmp_path, 20)


@pytest.mark.soak
@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_agent_kills_soak_100_rounds(tmp_path: Path) -> None:
    await run_rounds(tmp_path, 100)


if __name__ == "__main__":
    root_arg, port_arg, first_arg, fault_arg = sys.argv[1:5]
    asyncio.run(agent_main(Path(root_arg), int(port_arg), int(first_arg), int(fault_arg)))
