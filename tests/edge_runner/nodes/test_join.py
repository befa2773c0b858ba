"""join: automatic (after split), manual (string/array/object/merged/buffer, count, timeout,
complete, reset, accumulate) and reduce."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness
from tests.edge_runner.nodes.test_change import conformance_cases, run_conformance_case

pytestmark = pytest.mark.asyncio


def join(**extra: Any) -> list[dict[str, Any]]:
    node = {
        "id": "n1",
        "type": "join",
        "mode": "custom",
        "build": "array",
        "property": "payload",
        "propertyType": "msg",
        "key": "topic",
        "joiner": "\\n",
        "joinerType": "str",
        "accumulate": False,
        "timeout": "",
        "count": "",
        "reduceRight": False,
        "reduceExp": "",
        "reduceInit": "",
        "reduceInitType": "",
        "reduceFixup": "",
        "wires": [["out"]],
    }
    node.update(extra)
    return [node, {"id": "out", "type": "helper"}]


async def joined(flow: list[dict[str, Any]], *msgs: dict[str, Any]) -> list[dict[str, Any]]:
    async with FlowHarness(flow) as h:
        for msg in msgs:
            h.receive("n1", msg)
        await h.quiet(0.03)
        return h.messages.get("out", [])


@pytest.mark.parametrize("case", conformance_cases("join"))
async def test_conformance(case: dict[str, Any]) -> None:
    await run_conformance_case(case)


async def test_split_then_join_round_trips_everything() -> None:
    flow = [
        {
            "id": "s",
            "type": "split",
            "splt": "\\n",
            "spltType": "str",
            "arraySplt": 2,
            "arraySpltType": "len",
            "stream": False,
            "addname": "",
            "wires": [["n1"]],
        },
        *join(mode="auto"),
    ]
    values = ["a\nb\nc", [1, 2, 3, 4, 5], {"x": 1, "y": [2]}, b"ab\ncd"]
    async with FlowHarness(flow) as h:
        for value in values:
            h.receive("s", {"payload": value, "topic": "t"})
        out = await h.wait("out", len(values))
        assert [m["payload"] for m in out] == values
        assert all("parts" not in m and m["topic"] == "t" for m in out)


async def test_nested_split_restores_the_outer_parts() -> None:
    outer = {"id": "o", "index": 1, "count": 2, "type": "array"}
    parts = [
        {
            "payload": "a",
            "parts": {
                "id": "i",
                "index": 0,
                "count": 1,
                "type": "string",
                "ch": ",",
                "parts": outer,
            },
        }
    ]
    (out,) = await joined(join(mode="auto"), *parts)
    assert out["parts"] == outer


async def test_auto_without_parts_is_a_catchable_error() -> None:
    async with FlowHarness(join(mode="auto")) as h:
        h.receive("n1", {"payload": 1})
        await h.quiet(0.02)
        assert "msg.parts" in h.logs(20)[0]["msg"]


async def test_manual_array_after_count_and_string_with_complete() -> None:
    out = await joined(join(count="2"), {"payload": 1}, {"payload": 2}, {"payload": 3})
    assert [m["payload"] for m in out] == [[1, 2]]
    out = await joined(
        join(build="string", joiner="-"), {"payload": "a"}, {"payload": 2}, {"complete": True}
    )
    assert [m["payload"] for m in out] == ["a-2"]
    assert "complete" not in out[0]


async def test_manual_reset_discards_the_group() -> None:
    out = await joined(
        join(count="2"), {"payload": 1}, {"reset": True}, {"payload": 2}, {"payload": 3}
    )
    assert [m["payload"] for m in out] == [[2, 3]]


async def test_manual_merged_object_and_whole_messages() -> None:
    out = await joined(
        join(build="merged", count="2"), {"payload": {"a": 1}}, {"payload": {"b": 2, "a": 3}}
    )
    assert out[0]["payload"] == {"a": 3, "b": 2}
    out = await joined(
        join(propertyType="full", count="2"), {"payload": 1, "topic": "x"}, {"payload": 2}
    )
    assert [m["payload"] for m in out[0]["payload"]] == [1, 2]


async def test_manual_buffer_with_binary_joiner() -> None:
    out = await joined(
        join(build="buffer", joiner="[44]", joinerType="bin", count="2"),
        {"payload": b"a"},
        {"payload": b"b"},
    )
    assert out[0]["payload"] == b"a,b"


async def test_accumulate_keeps_building_the_object() -> None:
    out = await joined(
        join(build="object", count="2", accumulate=True),
        {"topic": "a", "payload": 1},
        {"topic": "b", "payload": 2},
        {"topic": "c", "payload": 3},
    )
    assert [m["payload"] for m in out] == [{"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}]


async def test_reduce_sums_in_index_order_with_fixup() -> None:
    flow = join(
        mode="reduce",
        reduceExp="$A + payload",
        reduceInit="0",
        reduceInitType="num",
        reduceFixup="$A / $N",
    )
    msgs = [
        {"payload": v, "parts": {"id": "g", "index": i, "count": 4}}
        for i, v in [(2, 3), (0, 1), (3, 4), (1, 2)]
    ]
    (out,) = await joined(flow, *msgs)
    assert out["payload"] == 2.5
    assert "parts" not in out


async def test_reduce_right_builds_a_reversed_string() -> None:
    flow = join(
        mode="reduce",
        reduceExp="$A & payload",
        reduceInit="",
        reduceInitType="str",
        reduceRight=True,
    )
    msgs = [
        {"payload": v, "parts": {"id": "g", "index": i, "count": 3}} for i, v in enumerate("abc")
    ]
    (out,) = await joined(flow, *msgs)
    assert out["payload"] == "cba"


@pytest.mark.parametrize(
    "bad",
    [
        {"mode": "reduce"},
        {"count": "x"},
        {"joinerType": "bin", "joiner": "nope"},
        {"build": "tree"},
    ],
)
async def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(join(**bad)):
            pass
