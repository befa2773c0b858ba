"""The storage commit unit at each crash point, and which exceptions from node code are
contained (the kill tests with a real process are in ``test_deploy_chaos``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from edge_runner.runtime import storage as storage_module
from edge_runner.runtime.containment import is_node_failure
from edge_runner.runtime.paths import CREDENTIALS_FILE, FLOWS_FILE, JOURNAL_FILE, RunnerPaths
from edge_runner.runtime.server import Server
from edge_runner.runtime.storage import FlowStorage
from edge_runner.runtime.watchdog import WatchdogInterrupt

OLD = [{"id": "t", "type": "tab", "label": "old"}]
NEW = [{"id": "t", "type": "tab", "label": "new"}]


def stage(userdir: Path, journal: bool) -> None:
    """A commit of NEW with credentials b"new" stopped by a crash before its renames, after
    (``journal``) or before its commit point."""
    names = {
        FLOWS_FILE: storage_module._write_temp(userdir, FLOWS_FILE, json.dumps(NEW).encode()),
        CREDENTIALS_FILE: storage_module._write_temp(userdir, CREDENTIALS_FILE, b"new"),
    }
    if journal:
        (userdir / JOURNAL_FILE).write_text(json.dumps({k: v.name for k, v in names.items()}))


@pytest.mark.parametrize(("journal", "expected"), [(True, NEW), (False, OLD)])
def test_an_interrupted_commit_is_finished_or_discarded_as_one(
    tmp_path: Path, journal: bool, expected: list[dict[str, str]]
) -> None:
    FlowStorage(tmp_path).save(OLD, b"old")
    stage(tmp_path, journal)
    assert FlowStorage(tmp_path).load() == expected
    creds = (tmp_path / CREDENTIALS_FILE).read_bytes()
    assert creds == (b"new" if journal else b"old")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CREDENTIALS_FILE, FLOWS_FILE])


def test_a_journal_cannot_rename_files_it_does_not_own(tmp_path: Path) -> None:
    FlowStorage(tmp_path).save(OLD, b"old")
    (tmp_path / "elsewhere.json").write_text("[]")
    (tmp_path / JOURNAL_FILE).write_text(json.dumps({FLOWS_FILE: "elsewhere.json"}))
    assert FlowStorage(tmp_path).load() == OLD
    assert (tmp_path / "elsewhere.json").exists()
    assert not (tmp_path / JOURNAL_FILE).exists()


def test_start_marker_round_trip(tmp_path: Path) -> None:
    storage = FlowStorage(tmp_path)
    assert storage.starting_marker() is None
    storage.mark_starting("abc")
    marker = storage.starting_marker()
    assert marker is not None
    assert marker["rev"] == "abc"
    storage.clear_starting()
    assert storage.starting_marker() is None


async def test_cancellation_of_the_engines_own_task_is_never_contained() -> None:
    seen: list[bool] = []

    async def node_start() -> None:
        try:
            await asyncio.sleep(10)
        except BaseException as exc:
            seen.append(is_node_failure(exc))
            raise

    task = asyncio.get_running_loop().create_task(node_start())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [False]


async def test_exits_raised_by_node_code_are_contained() -> None:
    for exc in (SystemExit(3), KeyboardInterrupt(), GeneratorExit(), asyncio.CancelledError()):
        assert is_node_failure(exc), exc
    assert is_node_failure(ValueError("x"))
    assert not is_node_failure(WatchdogInterrupt("too long"))


SLOW_START = [
    {"id": "t1", "type": "tab"},
    {
        "id": "fn",
        "type": "python-function",
        "z": "t1",
        "initialize": "import asyncio\nawait asyncio.sleep(60)",
        "wires": [],
    },
]


async def test_a_graceful_stop_during_a_start_is_not_a_crash(tmp_path: Path) -> None:
    server = Server("127.0.0.1", 0, RunnerPaths(tmp_path / "ud"), credential_secret="s")
    await server.start()
    assert server.deployer is not None
    deploy = asyncio.get_running_loop().create_task(server.deployer.deploy(SLOW_START))
    while server.storage.starting_marker() is None:
        assert not deploy.done()
        await asyncio.sleep(0.01)
    await server.stop()
    # the engine's own cancellation goes through node code that is starting
    deploy.cancel()
    with pytest.raises(asyncio.CancelledError):
        await deploy
    assert server.storage.starting_marker() is None


async def test_safe_mode_survives_a_graceful_restart(tmp_path: Path) -> None:
    userdir = tmp_path / "ud"
    FlowStorage(userdir).save(SLOW_START)
    FlowStorage(userdir).mark_starting("crashed-rev")
    for _ in range(2):
        server = Server("127.0.0.1", 0, RunnerPaths(userdir), credential_secret="s")
        await server.start()
        assert server.deployer is not None
        assert server.deployer.state.state == "safe"
        assert "crashed-rev" in server.deployer.state.reason
        assert server.engine.nodes == {}
        await server.stop()
