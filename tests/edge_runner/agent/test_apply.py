"""The agent applies targets to a real engine child process (device-protocol.md, "Applying a
target"): good targets run with their credentials and env vars; failing ones are rolled back to
the last good target at once, offline (RELIABILITY.md family 18: the time from the failed
verdict to the previous snapshot running is printed); a crash loop after a pass is rolled back
too; a restarted agent runs its last good target without any platform."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_runner.agent.apply import ENV_NODE_ID, Applier, ApplyOutcome
from edge_runner.agent.engine_client import EngineClient
from edge_runner.agent.health import EngineWatch
from edge_runner.agent.store import Handled, SnapshotStore
from edge_runner.agent.supervisor import Supervisor
from edge_runner.protocol.manifest import (
    Manifest,
    build_parts,
    canonical_json,
    seal,
    sign,
    verify,
)
from edge_runner.runtime.paths import RunnerPaths
from tests.edge_runner.test_server import free_port

TEAM = "3"
DEVICE = "7"


def fixed_keys() -> tuple[bytes, bytes, bytes, bytes]:
    """Fixed test keys: agent processes started by the kill tests must open what earlier
    ones installed (``generate_*_key`` makes random ones)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    signing, sealing = bytes(range(32)), bytes(range(32, 64))
    return (
        signing,
        Ed25519PrivateKey.from_private_bytes(signing).public_key().public_bytes_raw(),
        sealing,
        X25519PrivateKey.from_private_bytes(sealing).public_key().public_bytes_raw(),
    )


SIGNING_PRIVATE, SIGNING_PUBLIC, SEALING_PRIVATE, SEALING_PUBLIC = fixed_keys()


@dataclass(frozen=True)
class Identity:
    device_id: str = DEVICE
    sealing_private_key: bytes = SEALING_PRIVATE


def gen_flow(generation: int, extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``GET /gen`` answers the generation, the env var LINE and the tab credential SECRET."""
    return [
        {
            "id": "t1",
            "type": "tab",
            "label": f"line {generation}",
            "env": [{"name": "SECRET", "value": "", "type": "cred"}],
        },
        {
            "id": "gin",
            "type": "http in",
            "z": "t1",
            "url": "/gen",
            "method": "get",
            "wires": [["gfn"]],
        },
        {
            "id": "gfn",
            "type": "python-function",
            "z": "t1",
            "func": (
                f"msg['payload'] = {{'generation': {generation}, 'line': env.get('LINE'), "
                "'secret': env.get('SECRET')}\nreturn msg"
            ),
            "wires": [["gout"]],
        },
        {"id": "gout", "type": "http response", "z": "t1", "wires": []},
        *(extra or []),
    ]


def health_flow(status: int) -> list[dict[str, Any]]:
    """``GET /health`` answers ``status``."""
    return [
        {
            "id": "hin",
            "type": "http in",
            "z": "t1",
            "url": "/health",
            "method": "get",
            "wires": [["hfn"]],
        },
        {
            "id": "hfn",
            "type": "python-function",
            "z": "t1",
            "func": f"msg['statusCode'] = {status}\nmsg['payload'] = 'x'\nreturn msg",
            "wires": [["hout"]],
        },
        {"id": "hout", "type": "http response", "z": "t1", "wires": []},
    ]


def later(func: str, delay: float = 0.3) -> list[dict[str, Any]]:
    """An inject firing once after ``delay`` s into a python-function running ``func``."""
    return [
        {
            "id": "lin",
            "type": "inject",
            "z": "t1",
            "once": True,
            "onceDelay": delay,
            "repeat": "",
            "props": [{"p": "payload"}],
            "payload": "",
            "payloadType": "date",
            "wires": [["lfn"]],
        },
        {"id": "lfn", "type": "python-function", "z": "t1", "func": func, "wires": [[]]},
    ]


def bundle(
    generation: int,
    flows: list[dict[str, Any]] | None = None,
    *,
    env: dict[str, Any] | None = None,
    health: dict[str, Any] | None = None,
    secret: str | None = None,
) -> tuple[Manifest, dict[str, bytes]]:
    """A signed target for ``DEVICE`` and its parts, as the platform makes them."""
    parts = {
        "flows.json": canonical_json(flows if flows is not None else gen_flow(generation)),
        "settings.json": canonical_json(
            {
                "env": {"LINE": f"line-{generation}", **(env or {})},
                "runner": {},
                "health": health or {"window_seconds": 0.5},
            }
        ),
        "credentials.sealed": seal(
            json.dumps({"t1": {"SECRET": secret or f"canary-{generation}"}}).encode(),
            recipient_public_key=SEALING_PUBLIC,
            device=DEVICE,
        ),
    }
    document = sign(
        private_key=SIGNING_PRIVATE,
        team=TEAM,
        device=DEVICE,
        snapshot=f"snp{generation}",
        generation=generation,
        issued_at="2026-12-03T00:00:00Z",
        name=f"v{generation}",
        parts=build_parts(parts),
    )
    return verify(document, trusted_keys=[SIGNING_PUBLIC], team=TEAM, device=DEVICE), parts


def download(store: SnapshotStore, generation: int, parts: dict[str, bytes]) -> None:
    """What the download helper does: every part into the incoming directory."""
    for name, body in parts.items():
        path = store.incoming(generation) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


def write_credential(paths: RunnerPaths) -> Path:
    paths.ensure(paths.device)
    if not paths.device_credential.exists():
        fd = os.open(paths.device_credential, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("mfd_" + secrets.token_urlsafe(32))
    return paths.device_credential


@dataclass
class Device:
    """A managed runner: store, supervised engine child, applier (no platform)."""

    paths: RunnerPaths
    port: int
    supervisor: Supervisor
    store: SnapshotStore
    applier: Applier
    http: aiohttp.ClientSession
    outcomes: list[ApplyOutcome] = field(default_factory=list)

    @property
    def client(self) -> EngineClient:
        return self.applier.client

    async def apply(self, generation: int, **options: Any) -> ApplyOutcome:
        manifest, parts = bundle(generation, **options)
        download(self.store, generation, parts)
        outcome = await self.applier.apply(manifest)
        self.outcomes.append(outcome)
        return outcome

    async def gen(self) -> dict[str, Any]:
        async with self.http.get(f"http://127.0.0.1:{self.port}/gen") as r:
            assert r.status == 200, await r.text()
            return dict(await r.json())


async def start_device(
    root: Path, port: int | None = None, *, start: bool = True, **options: Any
) -> Device:
    """A device on ``root``; ``start=False`` leaves starting the engine to ``Applier.boot``."""
    paths = RunnerPaths(root)
    token_file = write_credential(paths)
    port = port or free_port()
    supervisor = Supervisor(paths, port, token_file, **options)
    if start:
        await supervisor.start()
    store = SnapshotStore(paths)
    store.clean()
    applier = Applier(store, supervisor.client(), supervisor, Identity(), EngineWatch())
    return Device(paths, port, supervisor, store, applier, aiohttp.ClientSession())


async def stop_device(device: Device) -> None:
    await device.http.close()
    await device.supervisor.stop()


@pytest.fixture
async def device(tmp_path: Path) -> AsyncIterator[Device]:
    dev = await start_device(tmp_path / "root", poll_seconds=0.5)
    try:
        yield dev
    finally:
        await stop_device(dev)


async def test_a_good_target_runs_with_its_credentials_and_env_and_is_recorded(
    device: Device,
) -> None:
    outcome = await device.apply(1)
    assert outcome.outcome == "applied", outcome
    assert await device.gen() == {"generation": 1, "line": "line-1", "secret": "canary-1"}
    state = device.store.state
    assert (state.active, state.last_good, state.min_generation) == (1, 1, 1)
    assert state.handled is not None
    assert state.handled.outcome == "applied"
    deployed = await device.client.flows()
    assert deployed[0]["id"] == ENV_NODE_ID
    assert "canary-1" not in json.dumps(deployed)
    assert b"canary-1" not in device.paths.flows.read_bytes()
    assert not device.paths.agent_state.read_bytes().count(b"canary")

    outcome = await device.apply(2)
    assert outcome.outcome == "applied"
    assert await device.gen() == {"generation": 2, "line": "line-2", "secret": "canary-2"}
    again = await device.applier.apply(bundle(2)[0])
    assert again.outcome == "applied"
    assert "already handled" in again.reason
    stale = await device.applier.apply(bundle(1)[0])
    assert stale.outcome == "refused"
    assert await device.gen() == {"generation": 2, "line": "line-2", "secret": "canary-2"}


async def test_a_failed_probe_rolls_back_to_the_last_good_target(device: Device) -> None:
    good = await device.apply(
        1, flows=gen_flow(1, health_flow(200)), health={"probe": {"path": "/health", "status": 200}}
    )
    assert good.outcome == "applied", good
    bad = await device.apply(
        2,
        flows=gen_flow(2, health_flow(500)),
        health={"timeout_seconds": 2, "probe": {"path": "/health", "status": 200}},
    )
    assert bad.outcome == "rolled_back", bad
    assert "probe /health failed: answered 500" in bad.reason
    assert bad.active == 1
    assert bad.rollback_seconds is not None
    report("failed probe", bad)
    assert await device.gen() == {"generation": 1, "line": "line-1", "secret": "canary-1"}
    state = device.store.state
    assert (state.active, state.last_good) == (1, 1)
    assert state.handled is not None
    assert (state.handled.generation, state.handled.outcome) == (
        2,
        "rolled_back",
    )


async def test_a_node_failing_to_start_rolls_back(device: Device) -> None:
    assert (await device.apply(1)).outcome == "applied"
    broken = {
        "id": "bad",
        "type": "python-function",
        "z": "t1",
        "initialize": "raise RuntimeError('no such device /dev/ttyUSB9')",
        "func": "return msg",
        "wires": [[]],
    }
    bad = await device.apply(2, flows=gen_flow(2, [broken]))
    assert bad.outcome == "rolled_back", bad
    assert "started with failures" in bad.reason
    assert "bad" in bad.reason
    assert bad.rollback_seconds is not None
    report("start failure", bad)
    assert (await device.gen())["generation"] == 1


async def test_a_first_target_failing_leaves_no_flows_running(device: Device) -> None:
    bad = await device.apply(
        1,
        flows=gen_flow(1, health_flow(503)),
        health={"timeout_seconds": 1, "probe": {"path": "/health"}},
    )
    assert bad.outcome == "failed"
    assert "no earlier target" in bad.reason
    assert await device.client.flows() == []
    assert device.store.state.active is None
    assert device.store.state.last_good is None


async def test_an_engine_killing_target_is_rolled_back(device: Device) -> None:
    assert (await device.apply(1)).outcome == "applied"
    restarts = device.supervisor.restarts
    bad = await device.apply(
        2, flows=gen_flow(2, later("import os\nos._exit(3)", 0.1)), health={"window_seconds": 2}
    )
    assert bad.outcome == "rolled_back", bad
    assert "restarted" in bad.reason or "unreachable" in bad.reason, bad.reason
    assert device.supervisor.restarts > restarts
    assert bad.rollback_seconds is not None
    report("engine killed", bad)
    assert (await device.gen())["generation"] == 1


async def test_a_crash_loop_after_a_pass_is_rolled_back(device: Device) -> None:
    assert (await device.apply(1)).outcome == "applied"
    late: list[ApplyOutcome] = []
    device.applier.outcome_listeners.append(late.append)
    # passes its 0.5 s check, then kills the engine 1 s after every start
    crashing = gen_flow(2, later("import os\nos._exit(3)", 1.0))
    assert (await device.apply(2, flows=crashing)).outcome == "applied"
    for _ in range(300):
        if late:
            break
        await asyncio.sleep(0.05)
    assert late, "no rollback after a crash loop"
    assert late[0].outcome == "rolled_back"
    assert late[0].reason.startswith("crash loop")
    assert late[0].rollback_seconds is not None
    report("crash loop", late[0])
    assert (await device.gen())["generation"] == 1
    state = device.store.state
    assert (state.active, state.last_good) == (1, 1)
    assert state.handled is not None
    assert (state.handled.generation, state.handled.outcome) == (
        2,
        "rolled_back",
    )


async def test_a_restarted_agent_runs_its_last_good_target_offline(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = await start_device(root)
    try:
        assert (await first.apply(1)).outcome == "applied"
        assert (await first.apply(2)).outcome == "applied"
    finally:
        await stop_device(first)
    # an apply of generation 3 interrupted by a kill: recorded, engine flows replaced
    second = await start_device(root, first.port)
    try:
        manifest, parts = bundle(3)
        download(second.store, 3, parts)
        await second.store.install(3, manifest.document)
        second.store.record(active=3, handled=Handled(3, "applying"))
        outcome = await second.applier.boot()
        assert outcome is not None
        assert outcome.outcome == "rolled_back"
        assert outcome.active == 2
        assert (await second.gen())["generation"] == 2
    finally:
        await stop_device(second)
    third = await start_device(root, first.port)
    try:
        assert await third.applier.boot() is None
        assert await third.gen() == {"generation": 2, "line": "line-2", "secret": "canary-2"}
    finally:
        await stop_device(third)


def report(case: str, outcome: ApplyOutcome) -> None:
    print(
        f"\nfamily 18 ({case}): previous snapshot running {outcome.rollback_seconds:.3f} s "
        "after the failed verdict"
    )
