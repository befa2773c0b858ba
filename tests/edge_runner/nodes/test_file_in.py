"""The read-file node: text, bytes, lines and chunks with parts, confinement, errors."""

from pathlib import Path
from typing import Any

import pytest

from edge_runner.runtime.paths import RunnerPaths
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {
        "id": "r",
        "type": "file in",
        "name": "",
        "filename": "in.txt",
        "filenameType": "str",
        "format": "utf8",
        "chunk": False,
        "sendError": False,
        "encoding": "none",
        "allProps": False,
        "wires": [["out"]],
    }
    node.update(config)
    return [
        node,
        {"id": "out", "type": "helper"},
        {"id": "c1", "type": "catch", "scope": None, "uncaught": False, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]


async def test_whole_file_as_text_or_bytes(data_dir: Path) -> None:
    (data_dir / "in.txt").write_bytes("héllo\nwörld".encode())
    async with FlowHarness(flow(), paths=RunnerPaths(data_dir.parent)) as h:
        h.receive("r", {"topic": "t"})
        (out,) = await h.wait("out")
    assert out["payload"] == "héllo\nwörld"
    assert out["filename"] == "in.txt"
    assert out["topic"] == "t"
    async with FlowHarness(flow(format=""), paths=RunnerPaths(data_dir.parent)) as h:
        h.receive("r", {})
        (out,) = await h.wait("out")
    assert out["payload"] == "héllo\nwörld".encode()


async def test_encoding(data_dir: Path) -> None:
    (data_dir / "in.txt").write_bytes(b"caf\xe9")
    async with FlowHarness(flow(encoding="latin1"), paths=RunnerPaths(data_dir.parent)) as h:
        h.receive("r", {})
        (out,) = await h.wait("out")
    assert out["payload"] == "café"


async def test_one_message_per_line_with_parts(data_dir: Path) -> None:
    (data_dir / "in.txt").write_text("a\nb\nc")
    async with FlowHarness(flow(format="lines"), paths=RunnerPaths(data_dir.parent)) as h:
        h.receive("r", {"topic": "t", "keep": 1})
        out = await h.wait("out", 3)
    assert [m["payload"] for m in out] == ["a", "b", "c"]
    assert [m["parts"]["index"] for m in out] == [0, 1, 2]
    assert "count" not in out[0]["parts"]
    assert out[2]["parts"]["count"] == 3
    assert out[0]["parts"]["ch"] == "\n"
    assert out[0]["parts"]["type"] == "string"
    assert out[0]["topic"] == "t"
    assert "keep" not in out[0]
    assert len({m["_msgid"] for m in out}) == 3


async def test_all_props_copies_the_input_message(data_dir: Path) -> None:
    (data_dir / "in.txt").write_text("a\n")
    async with FlowHarness(
        flow(format="lines", allProps=True), paths=RunnerPaths(data_dir.parent)
    ) as h:
        h.receive("r", {"keep": 1})
        out = await h.wait("out", 2)
    assert [m["payload"] for m in out] == ["a", ""]
    assert all(m["keep"] == 1 for m in out)


async def test_stream_in_64k_chunks(data_dir: Path) -> None:
    blob = bytes(range(256)) * 600  # 153600 bytes: three chunks
    (data_dir / "in.bin").write_bytes(blob)
    async with FlowHarness(
        flow(format="stream", filename="in.bin"), paths=RunnerPaths(data_dir.parent)
    ) as h:
        h.receive("r", {})
        out = await h.wait("out", 3)
    assert [len(m["payload"]) for m in out] == [65536, 65536, 22528]
    assert b"".join(m["payload"] for m in out) == blob
    assert out[-1]["parts"]["count"] == 3
    assert out[0]["parts"]["type"] == "buffer"


async def test_lines_feed_the_csv_node_into_one_array(data_dir: Path) -> None:
    (data_dir / "plc.csv").write_text("tag,value\nT1,20.5\nT2,21\n")
    async with FlowHarness(
        [
            {
                "id": "r",
                "type": "file in",
                "filename": "plc.csv",
                "format": "lines",
                "wires": [["c"]],
            },
            {"id": "c", "type": "csv", "hdrin": True, "multi": "mult", "wires": [["out"]]},
            {"id": "out", "type": "helper"},
        ],
        paths=RunnerPaths(data_dir.parent),
    ) as h:
        h.receive("r", {})
        (out,) = await h.wait("out")
    assert out["payload"] == [{"tag": "T1", "value": 20.5}, {"tag": "T2", "value": 21}]


async def test_filename_from_message(data_dir: Path) -> None:
    (data_dir / "x.txt").write_text("from msg")
    async with FlowHarness(
        flow(filename="", filenameType="str"), paths=RunnerPaths(data_dir.parent)
    ) as h:
        h.receive("r", {"filename": "x.txt"})
        (out,) = await h.wait("out")
    assert out["payload"] == "from msg"


async def test_missing_file_is_an_error_and_send_error_forwards(data_dir: Path) -> None:
    async with FlowHarness(
        flow(filename="nope.txt", sendError=True), paths=RunnerPaths(data_dir.parent)
    ) as h:
        h.receive("r", {"payload": "p", "topic": "t"})
        (err,) = await h.wait("errs")
        (sent,) = await h.wait("out")
    assert err["error"]["message"] == "failed to read 'nope.txt': No such file or directory"
    assert "payload" not in sent
    assert sent["error"]["message"] == err["error"]["message"]


async def test_paths_outside_the_data_dir_are_refused(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    (data_dir / "sneaky").symlink_to(tmp_path / "secret.txt")
    async with FlowHarness(flow(filename=""), paths=RunnerPaths(data_dir.parent)) as h:
        for name in ("../secret.txt", str(tmp_path / "secret.txt"), "sneaky"):
            h.receive("r", {"filename": name})
        errs = await h.wait("errs", 3)
        assert "out" not in h.messages
    assert all("outside the data directory" in e["error"]["message"] for e in errs)
