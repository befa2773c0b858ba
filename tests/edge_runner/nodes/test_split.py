"""split: arrays, strings (separator, fixed length, stream), objects, buffers, nested parts."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness
from tests.edge_runner.nodes.test_change import conformance_cases, run_conformance_case

pytestmark = pytest.mark.asyncio


def split(**extra: Any) -> list[dict[str, Any]]:
    node = {
        "id": "n1",
        "type": "split",
        "splt": "\\n",
        "spltType": "str",
        "arraySplt": 1,
        "arraySpltType": "len",
        "stream": False,
        "addname": "",
        "wires": [["out"]],
    }
    node.update(extra)
    return [node, {"id": "out", "type": "helper"}]


async def pieces(flow: list[dict[str, Any]], *msgs: dict[str, Any]) -> list[dict[str, Any]]:
    async with FlowHarness(flow) as h:
        for msg in msgs:
            h.receive("n1", msg)
        await h.quiet(0.03)
        return h.messages.get("out", [])


@pytest.mark.parametrize("case", conformance_cases("split"))
async def test_conformance(case: dict[str, Any]) -> None:
    await run_conformance_case(case)


async def test_array_in_chunks() -> None:
    out = await pieces(split(arraySplt=2), {"payload": [1, 2, 3, 4, 5]})
    assert [m["payload"] for m in out] == [[1, 2], [3, 4], [5]]
    assert [m["parts"]["count"] for m in out] == [3, 3, 3]
    assert out[0]["parts"]["len"] == 2


async def test_object_with_key_copied_to_topic() -> None:
    out = await pieces(split(addname="topic"), {"payload": {"a": 1, "b": 2}})
    assert [(m["topic"], m["payload"]) for m in out] == [("a", 1), ("b", 2)]
    assert out[1]["parts"] == {
        "id": out[0]["parts"]["id"],
        "type": "object",
        "key": "b",
        "index": 1,
        "count": 2,
    }


async def test_buffer_on_a_binary_separator() -> None:
    out = await pieces(split(splt="[0]", spltType="bin"), {"payload": b"ab\x00cd"})
    assert [m["payload"] for m in out] == [b"ab", b"cd"]
    assert out[0]["parts"]["type"] == "buffer"


async def test_stream_mode_carries_the_partial_line_over() -> None:
    out = await pieces(split(stream=True), {"payload": "a\nb"}, {"payload": "c\nd\n"})
    assert [m["payload"] for m in out] == ["a", "bc", "d"]
    assert [m["parts"]["index"] for m in out] == [0, 1, 2]
    assert "count" not in out[0]["parts"]
    assert len({m["parts"]["id"] for m in out}) == 1


async def test_existing_parts_are_nested_and_other_values_pass() -> None:
    outer = {"id": "x", "index": 0, "count": 1}
    out = await pieces(split(), {"payload": "a\nb", "parts": outer}, {"payload": 5})
    assert out[0]["parts"]["parts"] == outer
    assert out[2] == {"payload": 5, "_msgid": out[2]["_msgid"]}


async def test_other_property() -> None:
    out = await pieces(split(property="data"), {"data": [1, 2], "payload": "keep"})
    assert [m["data"] for m in out] == [1, 2]
    assert out[0]["payload"] == "keep"
    assert out[0]["parts"]["property"] == "data"


@pytest.mark.parametrize(
    "bad", [{"spltType": "len", "splt": "0"}, {"spltType": "bin", "splt": "x"}, {"arraySplt": 0}]
)
async def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(split(**bad)):
            pass
