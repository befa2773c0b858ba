"""The runner's directories: ``engine.userdir`` and ``engine.data_dir`` (where nodes keep files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_runner.runtime.engine import Engine
from edge_runner.runtime.server import build_engine
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

FILE_NODE = {
    "id": "w",
    "type": "file",
    "name": "",
    "filename": "out.txt",
    "filenameType": "str",
    "appendNewline": False,
    "createDir": False,
    "overwriteFile": "true",
    "encoding": "none",
    "wires": [["out"]],
}


@pytest.fixture(autouse=True)
def no_data_dir_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANIFOLD_RUNNER_DATA_DIR", raising=False)


async def test_data_dir_is_the_userdirs_data_folder_created_on_demand(tmp_path: Path) -> None:
    engine = Engine(userdir=tmp_path)
    assert engine.userdir == tmp_path
    assert not (tmp_path / "data").exists()
    assert engine.data_dir == tmp_path / "data"
    assert (tmp_path / "data").is_dir()


async def test_file_nodes_write_into_the_engines_data_dir(tmp_path: Path) -> None:
    engine = Engine(userdir=tmp_path)
    async with FlowHarness([FILE_NODE, {"id": "out", "type": "helper"}], engine=engine) as h:
        h.receive("w", {"payload": "kept"})
        await h.wait("out")
    assert (tmp_path / "data" / "out.txt").read_text() == "kept"
    await engine.stop()  # stopping again is harmless and keeps the userdir's files
    assert (tmp_path / "data" / "out.txt").is_file()


async def test_without_a_userdir_data_goes_to_a_private_temp_dir_removed_at_stop() -> None:
    engine = Engine()
    assert engine.userdir is None
    first = engine.data_dir
    assert first.is_dir()
    assert engine.data_dir == first
    (first / "scratch").write_text("x")
    await engine.stop()
    assert not first.exists()


async def test_an_explicit_data_dir_or_the_environment_wins_over_the_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Engine(userdir=tmp_path, data_dir=tmp_path / "d").data_dir == tmp_path / "d"
    monkeypatch.setenv("MANIFOLD_RUNNER_DATA_DIR", str(tmp_path / "env"))
    assert Engine().data_dir == tmp_path / "env"
    assert Engine(userdir=tmp_path).data_dir == tmp_path / "data"


async def test_the_standalone_server_engine_knows_its_userdir(tmp_path: Path) -> None:
    engine = build_engine(tmp_path, "a-credential-secret")
    assert engine.userdir == tmp_path
    assert engine.data_dir == tmp_path / "data"
