"""batch: by count (with overlap), by interval (with empty sequences), concatenation."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def batch(**extra: Any) -> list[dict[str, Any]]:
    node = {
        "id": "n1",
        "type": "batch",
        "mode": "count",
        "count": 2,
        "overlap": 0,
        "interval": 0.03,
        "allowEmptySequence": False,
        "topics": [],
        "wires": [["out"]],
    }
    node.update(extra)
    return [node, {"id": "out", "type": "helper"}]


async def test_count_batches_with_new_parts() -> None:
    async with FlowHarness(batch()) as h:
        for i in range(5):
            h.receive("n1", {"payload": i})
        out = await h.wait("out", 4)
        await h.quiet(0.02)
        assert [m["payload"] for m in out] == [0, 1, 2, 3]
        assert [(m["parts"]["index"], m["parts"]["count"]) for m in out] == [
            (0, 2),
            (1, 2),
            (0, 2),
            (1, 2),
        ]
        assert out[0]["parts"]["id"] != out[2]["parts"]["id"]


async def test_count_with_overlap_repeats_the_tail() -> None:
    async with FlowHarness(batch(count=3, overlap=1)) as h:
        for i in range(5):
            h.receive("n1", {"payload": i})
        out = await h.wait("out", 6)
        assert [m["payload"] for m in out] == [0, 1, 2, 2, 3, 4]


async def test_interval_sends_what_arrived_and_optionally_empty_sequences() -> None:
    async with FlowHarness(batch(mode="interval", allowEmptySequence=True)) as h:
        h.receive("n1", {"payload": 1})
        h.receive("n1", {"payload": 2})
        out = await h.wait("out", 3, timeout=1.0)
        assert [m.get("payload") for m in out[:3]] == [1, 2, None]
        assert out[2]["parts"]["count"] == 1


async def test_concat_joins_one_sequence_per_topic_in_topic_order() -> None:
    flow = batch(mode="concat", topics=[{"topic": "a"}, {"topic": "b"}])
    async with FlowHarness(flow) as h:
        h.receive(
            "n1", {"topic": "b", "payload": "b0", "parts": {"id": "y", "index": 0, "count": 1}}
        )
        h.receive(
            "n1", {"topic": "a", "payload": "a1", "parts": {"id": "x", "index": 1, "count": 2}}
        )
        h.receive(
            "n1", {"topic": "a", "payload": "a0", "parts": {"id": "x", "index": 0, "count": 2}}
        )
        out = await h.wait("out", 3)
        assert [m["payload"] for m in out] == ["a0", "a1", "b0"]
        assert [m["parts"]["index"] for m in out] == [0, 1, 2]


@pytest.mark.parametrize(
    "bad",
    [
        {"count": 0},
        {"count": 2, "overlap": 2},
        {"mode": "interval", "interval": 0},
        {"mode": "concat"},
    ],
)
async def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(batch(**bad)):
            pass
