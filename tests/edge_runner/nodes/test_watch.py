"""watch: a real directory and files watched through inotify; update/remove, recursion, errors."""

import json
import time
from pathlib import Path
from typing import Any

import pytest

from edge_runner.runtime.paths import RunnerPaths
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

SETTLE = 0.5  # longer than the watcher's grouping of changes (200 ms without one)


def flow(files: str, recursive: Any = "") -> list[dict[str, Any]]:
    return [
        {
            "id": "w",
            "type": "watch",
            "name": "",
            "files": files,
            "recursive": recursive,
            "wires": [["out"]],
        },
        {"id": "out", "type": "helper"},
    ]


def touch(path: Path) -> None:
    path.write_text("probe")


async def ready(h: FlowHarness, probe: Path) -> None:
    """The watcher runs a moment after start: touch ``probe`` until it reports, then forget
    what it reported."""
    deadline = time.monotonic() + 10
    while not h.messages.get("out") and time.monotonic() < deadline:
        touch(probe)
        await h.quiet(0.1)
    assert h.messages.get("out"), "the watcher never reported"
    await h.quiet(SETTLE)
    h.messages["out"].clear()


def fields(msg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if k != "_msgid"}


async def test_a_directory_reports_new_changed_and_removed_files(tmp_path: Path) -> None:
    async with FlowHarness(flow(str(tmp_path))) as h:
        await ready(h, tmp_path / ".probe")
        target = tmp_path / "a.txt"
        started = time.monotonic()
        target.write_text("hello")
        (created,) = await h.wait("out", 1, timeout=5)
        print(f"watch: change reported after {time.monotonic() - started:.2f} s")
        assert fields(created) == {
            "payload": str(target),
            "topic": str(tmp_path),
            "file": "a.txt",
            "filename": str(target),
            "event": "update",
            "size": 5,
            "type": "file",
        }
        await h.quiet(SETTLE)
        with target.open("a") as handle:
            handle.write(" world")
        (_, changed) = await h.wait("out", 2, timeout=5)
        assert (changed["event"], changed["size"]) == ("update", 11)
        await h.quiet(SETTLE)
        target.unlink()
        (*_, removed) = await h.wait("out", 3, timeout=5)
        assert fields(removed) == {
            "payload": str(target),
            "topic": str(tmp_path),
            "file": "a.txt",
            "filename": str(target),
            "event": "remove",
            "type": "none",
        }


async def test_a_burst_of_writes_is_reported_per_path_not_per_write(tmp_path: Path) -> None:
    async with FlowHarness(flow(str(tmp_path))) as h:
        await ready(h, tmp_path / ".probe")
        for n in range(20):
            (tmp_path / "burst.log").write_text("x" * n)
        await h.until(lambda: h.messages["out"] and h.messages["out"][-1]["size"] == 19, 5)
        await h.quiet(SETTLE)
        got = h.messages["out"]
        print(f"watch: 20 writes became {len(got)} message(s)")
        assert {m["file"] for m in got} == {"burst.log"}
        assert len(got) < 20


async def test_recursive_reaches_subdirectories_and_plain_does_not(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    async with FlowHarness(flow(str(tmp_path), recursive=True)) as h:
        await ready(h, tmp_path / ".probe")
        (sub / "deep.txt").write_text("1")
        (msg,) = await h.wait("out", 1, timeout=5)
        assert (msg["file"], msg["type"]) == ("deep.txt", "file")
    async with FlowHarness(flow(str(tmp_path), recursive=False)) as h:
        await ready(h, tmp_path / ".probe")
        (sub / "deeper.txt").write_text("1")
        (tmp_path / "top").mkdir()
        (msg,) = await h.wait("out", 1, timeout=5)
        await h.quiet(0.5)
        assert [(m["file"], m["type"]) for m in h.messages["out"]] == [("top", "directory")]


async def test_several_files_one_json_topic_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_text("")
    two.write_text("")
    missing = tmp_path / "missing"
    async with FlowHarness(flow(f"{one}, {two} ,{missing}")) as h:
        (error,) = [log for log in h.logs() if log["level"] == 20]
        assert error["msg"] == f"{missing} does not exist."
        await ready(h, one)
        two.write_text("22")
        (msg,) = await h.wait("out", 1, timeout=5)
        assert msg["topic"] == json.dumps([str(one), str(two), str(missing)]).replace(" ", "")
        assert (msg["payload"], msg["size"]) == (str(two), 2)


async def test_relative_paths_are_in_the_data_directory_and_stop_is_prompt(data_dir: Path) -> None:
    (data_dir / "inbox").mkdir()
    async with FlowHarness(flow("inbox"), paths=RunnerPaths(data_dir.parent)) as h:
        await ready(h, data_dir / "inbox" / ".probe")
        (data_dir / "inbox" / "job.json").write_text("{}")
        (msg,) = await h.wait("out", 1, timeout=5)
        assert msg["payload"] == str(data_dir / "inbox" / "job.json")
        assert msg["topic"] == "inbox"
        started = time.monotonic()
    print(f"watch: stop took {time.monotonic() - started:.2f} s")
    (data_dir / "inbox" / "later.json").write_text("{}")
    await h.quiet(0.4)
    assert len(h.messages["out"]) == 1


async def test_no_file_named_deploys_and_says_so() -> None:
    async with FlowHarness(flow(" , ")) as h:
        assert [log["msg"] for log in h.logs()] == ["no file or directory to watch"]
        assert h.node("w").task is None  # type: ignore[attr-defined]  # WatchNode


async def test_a_watched_file_survives_an_editor_save_and_siblings_stay_quiet(
    tmp_path: Path,
) -> None:
    target = tmp_path / "settings.ini"
    target.write_text("a")
    async with FlowHarness(flow(str(target), recursive=True)) as h:
        await ready(h, target)
        (tmp_path / "sibling.txt").write_text("not watched")
        new = tmp_path / "settings.ini.new"
        new.write_text("bb")
        new.replace(target)  # how editors save: a new file renamed over the old one
        (saved,) = await h.wait("out", 1, timeout=5)
        assert (saved["payload"], saved["event"], saved["size"]) == (str(target), "update", 2)
        await h.quiet(SETTLE)
        target.write_text("ccc")
        (_, written) = await h.wait("out", 2, timeout=5)
        assert written["size"] == 3
        await h.quiet(SETTLE)
        target.unlink()
        (*_, removed) = await h.wait("out", 3, timeout=5)
        assert (removed["event"], removed["type"]) == ("remove", "none")
        await h.quiet(0.3)
        assert {m["file"] for m in h.messages["out"]} == {"settings.ini"}
