"""The write-file node: append, atomic overwrite, delete, encodings, data-dir confinement."""

import os
from pathlib import Path
from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.runtime.paths import RunnerPaths
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {
        "id": "w",
        "type": "file",
        "name": "",
        "filename": "out.txt",
        "filenameType": "str",
        "appendNewline": True,
        "createDir": False,
        "overwriteFile": "false",
        "encoding": "none",
        "wires": [["out"]],
    }
    node.update(config)
    return [
        node,
        {"id": "out", "type": "helper"},
        {"id": "c1", "type": "catch", "scope": None, "uncaught": False, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]


async def test_append_adds_newlines_and_passes_the_message_on(data_dir: Path) -> None:
    async with FlowHarness(flow(), paths=RunnerPaths(data_dir.parent)) as h:
        h.receive("w", {"payload": "first"})
        h.receive("w", {"payload": 2})
        h.receive("w", {"payload": {"a": [1, True]}})
        h.receive("w", {"payload": b"\x00raw"})
        out = await h.wait("out", 4)
    assert out[0]["payload"] == "first"
    assert (data_dir / "out.txt").read_bytes() == b'first\n2\n{"a":[1,true]}\n\x00raw'


async def test_overwrite_is_atomic_and_keeps_the_file_mode(data_dir: Path) -> None:
    target = data_dir / "out.txt"
    target.write_text("old content that is longer")
    target.chmod(0o600)
    async with FlowHarness(
        flow(overwriteFile="true", appendNewline=False), paths=RunnerPaths(data_dir.parent)
    ) as h:
        h.receive("w", {"payload": "new"})
        await h.wait("out")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(data_dir)) == ["out.txt"]


async def test_delete_removes_the_file_and_missing_is_fine(data_dir: Path) -> None:
    (data_dir / "out.txt").write_text("x")
    async with FlowHarness(flow(overwriteFile="delete"), paths=RunnerPaths(data_dir.parent)) as h:
        h.receive("w", {"payload": "ignored"})
        h.receive("w", {"payload": "again"})
        await h.wait("out", 2)
    assert not (data_dir / "out.txt").exists()


async def test_filename_from_message_and_legacy_empty_filename(data_dir: Path) -> None:
    async with FlowHarness(
        flow(filename="target", filenameType="msg"), paths=RunnerPaths(data_dir.parent)
    ) as h:
        h.receive("w", {"payload": "a", "target": "one.log"})
        await h.wait("out")
    async with FlowHarness(flow(filename=""), paths=RunnerPaths(data_dir.parent)) as h:
        h.receive("w", {"payload": "b", "filename": "two.log"})
        await h.wait("out")
    assert (data_dir / "one.log").read_text() == "a\n"
    assert (data_dir / "two.log").read_text() == "b\n"


async def test_create_dir_and_missing_dir_error(data_dir: Path) -> None:
    async with FlowHarness(
        flow(filename="logs/day/1.txt"), paths=RunnerPaths(data_dir.parent)
    ) as h:
        h.receive("w", {"payload": "x"})
        (err,) = await h.wait("errs")
    assert "does not exist" in err["error"]["message"]
    async with FlowHarness(
        flow(filename="logs/day/1.txt", createDir=True), paths=RunnerPaths(data_dir.parent)
    ) as h:
        h.receive("w", {"payload": "x"})
        await h.wait("out")
    assert (data_dir / "logs/day/1.txt").read_text() == "x\n"


async def test_text_encoding(data_dir: Path) -> None:
    async with FlowHarness(
        flow(encoding="latin1", appendNewline=False), paths=RunnerPaths(data_dir.parent)
    ) as h:
        h.receive("w", {"payload": "café"})
        await h.wait("out")
    assert (data_dir / "out.txt").read_bytes() == b"caf\xe9"


async def test_paths_escaping_the_data_dir_are_refused(data_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (data_dir / "link").symlink_to(outside)
    (data_dir / "passwd").symlink_to(outside / "victim")
    async with FlowHarness(
        flow(filename="", filenameType="str"), paths=RunnerPaths(data_dir.parent)
    ) as h:
        for name in (
            "../escape.txt",
            str(outside / "abs.txt"),
            "link/x.txt",
            "passwd",
            "a/../../b.txt",
        ):
            h.receive("w", {"payload": "pwned", "filename": name})
        errs = await h.wait("errs", 5)
        assert "out" not in h.messages
        assert h.statuses("w")[-1] == {
            "fill": "red",
            "shape": "ring",
            "text": "Path 'a/../../b.txt' is outside the data directory",
        }
        h.receive("w", {"payload": "fine", "filename": "ok.txt"})
        await h.wait("out")
        assert h.statuses("w")[-1] == {}
    assert all("outside the data directory" in e["error"]["message"] for e in errs)
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


async def test_absolute_path_inside_the_data_dir_is_allowed(data_dir: Path) -> None:
    async with FlowHarness(
        flow(filename=str(data_dir / "abs.txt")), paths=RunnerPaths(data_dir.parent)
    ) as h:
        h.receive("w", {"payload": "in"})
        await h.wait("out")
    assert (data_dir / "abs.txt").read_text() == "in\n"


async def test_no_filename_and_directory_targets_are_errors(data_dir: Path) -> None:
    (data_dir / "adir").mkdir()
    async with FlowHarness(flow(filename=""), paths=RunnerPaths(data_dir.parent)) as h:
        h.receive("w", {"payload": "x"})
        h.receive("w", {"payload": "x", "filename": "adir"})
        errs = await h.wait("errs", 2)
    assert errs[0]["error"]["message"] == "No filename specified"
    assert "is a directory" in errs[1]["error"]["message"]


async def test_write_failure_is_reported(data_dir: Path) -> None:
    (data_dir / "plain").write_text("a file where a directory is needed")
    async with FlowHarness(
        flow(filename="plain/x.txt", createDir=True), paths=RunnerPaths(data_dir.parent)
    ) as h:
        h.receive("w", {"payload": "x"})
        (err,) = await h.wait("errs")
    assert err["error"]["message"] == "failed to write 'plain/x.txt': File exists"
    assert (data_dir / "plain").read_text() == "a file where a directory is needed"


@pytest.mark.parametrize("bad", [{"encoding": "klingon"}, {"overwriteFile": "maybe"}])
async def test_bad_config_is_rejected(bad: dict[str, Any], data_dir: Path) -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(flow(**bad), paths=RunnerPaths(data_dir.parent)):
            pass
