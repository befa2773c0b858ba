"""sort: arrays by element or JSONata key, as numbers, descending; sequences by property."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def sort(**extra: Any) -> list[dict[str, Any]]:
    node = {
        "id": "n1",
        "type": "sort",
        "order": "ascending",
        "as_num": False,
        "target": "payload",
        "targetType": "msg",
        "msgKey": "payload",
        "msgKeyType": "elem",
        "seqKey": "payload",
        "seqKeyType": "msg",
        "wires": [["out"]],
    }
    node.update(extra)
    return [node, {"id": "out", "type": "helper"}]


async def sorted_out(flow: list[dict[str, Any]], *msgs: dict[str, Any]) -> list[dict[str, Any]]:
    async with FlowHarness(flow) as h:
        for msg in msgs:
            h.receive("n1", msg)
        await h.quiet(0.03)
        return h.messages.get("out", [])


async def test_array_as_strings_and_as_numbers() -> None:
    (out,) = await sorted_out(sort(), {"payload": ["10", "9", "1"]})
    assert out["payload"] == ["1", "10", "9"]
    (out,) = await sorted_out(sort(as_num=True, order="descending"), {"payload": ["10", "9", "1"]})
    assert out["payload"] == ["10", "9", "1"]


async def test_array_by_jsonata_key() -> None:
    items = [{"n": "b", "v": 2}, {"n": "a", "v": 3}, {"n": "c", "v": 1}]
    (out,) = await sorted_out(sort(msgKey="v", msgKeyType="jsonata"), {"payload": items})
    assert [i["n"] for i in out["payload"]] == ["c", "b", "a"]


async def test_sequence_by_property_renumbers_parts() -> None:
    msgs = [
        {"payload": v, "parts": {"id": "g", "index": i, "count": 3}}
        for i, v in enumerate([3, 1, 2])
    ]
    out = await sorted_out(sort(targetType="seq"), *msgs)
    assert [m["payload"] for m in out] == [1, 2, 3]
    assert [m["parts"]["index"] for m in out] == [0, 1, 2]


async def test_sequence_without_parts_is_an_error() -> None:
    async with FlowHarness(sort(targetType="seq")) as h:
        h.receive("n1", {"payload": 1})
        await h.quiet(0.02)
        assert "msg.parts" in h.logs(20)[0]["msg"]


async def test_bad_jsonata_key_is_rejected() -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(sort(msgKey="(", msgKeyType="jsonata")):
            pass
