"""Context stores: memory and file (atomic, debounced, flushed on stop), named stores."""

# ruff: noqa: ASYNC240  # small files in tmp_path, read synchronously on purpose

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_runner.runtime.context import Context, ContextStore, ContextStores
from edge_runner.runtime.context_file import FileContextStore
from edge_runner.runtime.engine import Engine
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

COUNTER = {
    "id": "f",
    "type": "python-function",
    "z": "t1",
    "outputs": 1,
    "func": (
        "n = (context.get('n') or 0) + 1\ncontext.set('n', n)\n"
        "global_.set('blob', b'\\x00\\xff')\nflow.set('deep.list[1]', 'x')\n"
        "return {'payload': n}"
    ),
    "wires": [["cap"]],
}
FLOW = [{"id": "t1", "type": "tab"}, COUNTER, {"id": "cap", "type": "helper", "z": "t1"}]


def file_engine(directory: Path, interval: float = 0.05) -> Engine:
    return Engine(context=FileContextStore(directory, flush_interval=interval))


async def test_file_store_survives_a_restart_with_bytes_and_nested_keys(tmp_path: Path) -> None:
    async with FlowHarness(FLOW, engine=file_engine(tmp_path)) as h:
        h.receive("f", {})
        h.receive("f", {})
        await h.wait("cap", 2)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["flow%3At1.json", "global.json", "node%3Af.json"]
    assert json.loads((tmp_path / "global.json").read_text()) == {"blob": {"$bytes": "AP8="}}
    async with FlowHarness(FLOW, engine=file_engine(tmp_path)) as h:
        h.receive("f", {})
        assert (await h.wait("cap"))[0]["payload"] == 3
        assert h.engine.global_context.get("blob") == b"\x00\xff"
        assert h.engine.flow_context("t1").get("deep") == {"list": [None, "x"]}


async def test_writes_are_debounced_and_leave_no_temp_files(tmp_path: Path) -> None:
    store = FileContextStore(tmp_path, flush_interval=0.05)
    ctx = Context(store, "global")
    for i in range(100):
        ctx.set("i", i)
    assert not any(tmp_path.iterdir())  # nothing yet: one flush later, not 100
    import asyncio

    await asyncio.sleep(0.1)
    assert json.loads((tmp_path / "global.json").read_text()) == {"i": 99}
    assert [p.name for p in tmp_path.iterdir()] == ["global.json"]


async def test_unpersistable_value_keeps_the_previous_file(tmp_path: Path) -> None:
    store = FileContextStore(tmp_path, flush_interval=10)
    ctx = Context(store, "global")
    ctx.set("ok", 1)
    store.flush()
    ctx.set("bad", object())
    store.flush()
    assert json.loads((tmp_path / "global.json").read_text()) == {"ok": 1}


async def test_corrupt_file_is_reported_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "global.json").write_text("{not json")
    (tmp_path / "node%3Aa.json").write_text('{"k": 1}')
    store = FileContextStore(tmp_path)
    assert store.scopes == {"node:a": {"k": 1}}
    assert "unreadable" in caplog.text


async def test_named_stores_with_a_default(tmp_path: Path) -> None:
    stores = ContextStores(
        {"memory": ContextStore(), "file": FileContextStore(tmp_path, 10)}, default="memory"
    )
    flow = [
        {"id": "t1", "type": "tab"},
        {
            "id": "f",
            "type": "python-function",
            "z": "t1",
            "outputs": 1,
            "func": (
                "context.set('a', 1)\ncontext.set('b', 2, store='file')\n"
                "return {'payload': [context.get('a'), context.get('b'),"
                " context.get('b', store='file'), context.keys(store='file')]}"
            ),
            "wires": [["cap"]],
        },
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow, engine=Engine(context=stores)) as h:
        h.receive("f", {})
        assert (await h.wait("cap"))[0]["payload"] == [1, None, 2, ["b"]]
    assert json.loads((tmp_path / "node%3Af.json").read_text()) == {"b": 2}
    with pytest.raises(ValueError, match="default context store"):
        ContextStores({"memory": ContextStore()}, default="file")
    # an unknown store name means the default store, as in Node-RED (warned about once)
    Context(stores.default, "global", stores).set("x", 7, store="redis")
    assert Context(stores.default, "global", stores).get("x") == 7
